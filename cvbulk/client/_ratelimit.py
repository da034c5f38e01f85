"""Pacing: a GCRA rate limiter, AIMD adaptive concurrency, and a Pacer holding both per API group.

Each piece is usable on its own. Clocks and sleeps are injectable so that tests (and simulations) can run
on virtual time.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

import anyio

from ._tiers import TIER_RATES, TIERS, ApiGroup

__all__ = ["RateLimiter", "AdaptiveConcurrency", "Pacer", "ApiGroup", "TIERS", "TIER_RATES"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Seconds between the moments paced predictions start (``Pacer.for_tier``): a whole fraction of a second, so
#: that every one-second window holds the same number of ticks.
PREDICTION_TICK = 0.25


class RateLimiter:
    """Generic cell rate algorithm: at most ``rate`` acquisitions per second, ``burst`` of them at once.

    Every caller reserves its own slot synchronously (the theoretical arrival time moves on by one
    emission interval) and then sleeps until that slot, so callers are served in arrival order with no
    lock and no polling. ``pause(seconds)`` moves every pending and future slot behind a wait the service
    asked for (a 429 with Retry-After), which everyone must honour.

    ``tick`` (seconds, 0: off) lets a caller that must wait sleep until the next multiple of ``tick`` on the
    clock at or after its slot, never before it: the callers whose slots fall within one tick wake together.
    At 20 predictions/s and a 0.25 s tick the process wakes 4 times a second instead of 20 (each wake-up
    of an idle process costs ~0.1 ms of CPU), and any one-second window still holds at most ``rate`` starts
    (a tick that divides a second: 4 ticks of at most 5 slots each). On asyncio with the real clock, the callers
    of one tick share one timer (each sleep of its own is a timer through the event loop's heap).
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        tick: float = 0.0,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError("rate must be a positive, finite number of acquisitions per second")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not tick >= 0 or math.isinf(tick):
            raise ValueError("tick must be a finite number of seconds, 0 for none")
        self.rate = float(rate)
        self.burst = int(burst)
        self.tick = float(tick)
        self._interval = 1.0 / self.rate
        self._tolerance = self._interval * (self.burst - 1)
        self._clock = clock
        self._sleep = sleep
        self._tat = -math.inf  # theoretical arrival time of the next free slot
        self._paused_until = -math.inf
        self._pause_epoch = 0
        # tick -> (its loop, the futures of the callers waiting for it): one timer per tick (see _until)
        self._shared = self.tick > 0 and clock is time.monotonic and sleep is anyio.sleep
        self._at_tick: dict[float, tuple[asyncio.AbstractEventLoop, list[asyncio.Future[None]]]] = {}

    def __repr__(self) -> str:
        tick = f", tick={self.tick!r}" if self.tick else ""
        return f"RateLimiter(rate={self.rate!r}, burst={self.burst!r}{tick})"

    @property
    def paused_until(self) -> float:
        """Clock time until which nobody may go (``-inf`` when not paused)."""
        return self._paused_until

    async def acquire(self) -> None:
        """Wait for the next slot."""
        while True:
            now = self._clock()
            if self._paused_until > now:
                await self._sleep(self._paused_until - now)
                continue
            tat = self._tat if self._tat > now else now
            allowed_at = tat - self._tolerance
            self._tat = tat + self._interval
            wait = allowed_at - now
            if wait <= 0:
                return
            when = None
            if self.tick:
                when = math.ceil(allowed_at / self.tick - 1e-9) * self.tick  # the first tick at or after the slot
                wait = when - now
            epoch = self._pause_epoch
            try:
                if when is not None and self._shared:
                    await self._until(when)
                else:
                    await self._sleep(wait)
            except BaseException:
                # a cancelled waiter gives its slot back when nobody reserved behind it
                if self._tat == tat + self._interval:
                    self._tat = tat
                raise
            if epoch == self._pause_epoch:
                return
            # a pause began while we slept: our slot is void, queue again behind the pause

    async def _until(self, when: float) -> None:
        """Sleep until the clock reads ``when`` (a tick), on the one timer of everyone waiting for that tick."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: a sleep of one's own
            await self._sleep(max(0.0, when - self._clock()))
            return
        entry = self._at_tick.get(when)
        if entry is None or entry[0] is not loop:
            if len(self._at_tick) > 64:  # ticks left behind by a loop that is gone
                now = self._clock()
                for old in [t for t in self._at_tick if t < now - 1.0]:
                    del self._at_tick[old]
            entry = self._at_tick[when] = (loop, [])
            loop.call_at(when, self._release, when, entry)  # asyncio's clock is time.monotonic, as ours
        waiter: asyncio.Future[None] = loop.create_future()
        entry[1].append(waiter)
        await waiter  # a cancelled waiter is skipped by _release; the others still wake

    def _release(self, when: float, entry: tuple[Any, list[asyncio.Future[None]]]) -> None:
        if self._at_tick.get(when) is entry:
            del self._at_tick[when]
        for waiter in entry[1]:
            if not waiter.done():
                waiter.set_result(None)

    def pause(self, seconds: float) -> None:
        """Let nobody through for ``seconds`` from now (a longer pause already in force wins)."""
        if seconds <= 0:
            return
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._pause_epoch += 1
            # slots handed out before the pause restart after it
            if self._tat < until:
                self._tat = until


class AdaptiveConcurrency:
    """AIMD limit on requests in flight: +1 per ``limit`` successes, halved on overload.

    A burst of overload signals from requests that were in flight together counts once: after a decrease,
    further signals within ``cooldown`` seconds are ignored (TCP halves once per round trip for the same
    reason).
    """

    def __init__(
        self,
        initial: int,
        minimum: int = 1,
        maximum: int | None = None,
        *,
        cooldown: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        maximum = initial if maximum is None else maximum
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self._limit = initial
        self._successes = 0  # since the last change of the limit
        self._in_flight = 0
        self._cooldown = cooldown
        self._clock = clock
        self._last_decrease = -math.inf
        # made when someone has to wait, dropped when set: never bound to a loop that is gone
        self._changed: anyio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"AdaptiveConcurrency(limit={self.limit}, minimum={self.minimum}, "
            f"maximum={self.maximum}, in_flight={self._in_flight})"
        )

    @property
    def limit(self) -> int:
        """The current number of requests allowed in flight."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """How many slots are taken now."""
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots for the duration of the block."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        """Take one of the ``limit`` slots (give it back with :meth:`release`); waits while none is free."""
        while self._in_flight >= self._limit:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        self._in_flight += 1

    def release(self) -> None:
        """Give back a slot taken with :meth:`acquire`."""
        self._in_flight -= 1
        self._wake()

    def on_success(self) -> None:
        """Additive increase: one more slot after ``limit`` successes."""
        if self._limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self._limit:
            self._successes = 0
            self._limit += 1
            self._wake()

    def on_overload(self) -> None:
        """Multiplicative decrease: halve the limit (at most once per cooldown)."""
        now = self._clock()
        if now - self._last_decrease < self._cooldown:
            return
        self._last_decrease = now
        self._limit = max(self.minimum, self._limit // 2)
        self._successes = 0

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class Pacer:
    """Rate limiter + adaptive concurrency per API group, for one backend (endpoint + key).

    Share one Pacer between every client and task of the process that talks to the same resource: the
    service counts the resource's requests, not ours. ``Pacer.for_resource`` keeps such a shared instance.
    """

    _shared: ClassVar[dict[tuple[str, str, str], Pacer]] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        *,
        training_tps: float | None = None,
        train_project_tps: float | None = None,
        prediction_store_tps: float | None = None,
        prediction_nostore_tps: float | None = None,
        max_concurrency: int = 64,
        min_concurrency: int = 1,
        burst: int = 1,
        cooldown: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        ticks: dict[ApiGroup, float] | None = None,
    ) -> None:
        rates = {
            ApiGroup.TRAINING: training_tps,
            ApiGroup.TRAIN_PROJECT: train_project_tps,
            ApiGroup.PREDICTION_STORE: prediction_store_tps,
            ApiGroup.PREDICTION_NOSTORE: prediction_nostore_tps,
        }
        ticks = ticks or {}
        self._limiters: dict[ApiGroup, RateLimiter | None] = {
            group: (RateLimiter(rate, burst, clock=clock, sleep=sleep, tick=ticks.get(group, 0.0)) if rate else None)
            for group, rate in rates.items()
        }
        self._concurrency = {
            group: AdaptiveConcurrency(
                max_concurrency, min(min_concurrency, max_concurrency), max_concurrency,
                cooldown=cooldown, clock=clock,
            )
            for group in ApiGroup
        }
        # 429 pauses of groups that have no rate limiter to carry them
        self._paused_until: dict[ApiGroup, float] = {}
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def for_tier(cls, tier: str, *, max_concurrency: int = 64, **kwargs: Any) -> Pacer:
        """A pacer at the rates of a pricing tier of ``TIERS``: ``"F0"``, ``"S0"`` or ``"unlimited"``.

        Predictions are released on ``PREDICTION_TICK`` ticks (see ``RateLimiter``) where a tick holds
        several of them; pass ``ticks={}`` for slots spread evenly."""
        try:
            limits = TIERS[tier]
        except KeyError:
            raise ValueError(f"unknown tier {tier!r}; expected one of {sorted(TIERS)}") from None
        if "ticks" not in kwargs:
            kwargs["ticks"] = {
                group: PREDICTION_TICK
                for group, rate in (
                    (ApiGroup.PREDICTION_STORE, limits.prediction_store_tps),
                    (ApiGroup.PREDICTION_NOSTORE, limits.prediction_nostore_tps),
                )
                if rate and rate * PREDICTION_TICK >= 2
            }
        return cls(
            training_tps=limits.training_tps,
            train_project_tps=limits.train_project_tps,
            prediction_store_tps=limits.prediction_store_tps,
            prediction_nostore_tps=limits.prediction_nostore_tps,
            max_concurrency=max_concurrency,
            **kwargs,
        )

    @classmethod
    def for_resource(
        cls, endpoint: str, key: str, tier: str = "S0", *, max_concurrency: int = 64
    ) -> Pacer:
        """The process-wide pacer of one resource (created at ``tier`` rates on first use).

        The key is only hashed, never kept.
        """
        digest = hashlib.sha256(key.encode()).hexdigest()
        ident = (endpoint.rstrip("/").lower(), digest, tier)
        with cls._shared_lock:
            pacer = cls._shared.get(ident)
            if pacer is None:
                pacer = cls._shared[ident] = cls.for_tier(tier, max_concurrency=max_concurrency)
            return pacer

    def __repr__(self) -> str:
        rates = {g.value: (lim.rate if lim else None) for g, lim in self._limiters.items()}
        return f"Pacer(rates={rates})"

    def limiter(self, group: ApiGroup) -> RateLimiter | None:
        """The rate limiter of an API group (None: that group is not rate limited)."""
        return self._limiters[group]

    def adaptive(self, group: ApiGroup) -> AdaptiveConcurrency:
        """The adaptive concurrency of an API group."""
        return self._concurrency[group]

    def concurrency(self, group: ApiGroup) -> int:
        """The group's current adaptive concurrency limit."""
        return self._concurrency[group].limit

    def slot(self, group: ApiGroup) -> AbstractAsyncContextManager[None]:
        """Hold a concurrency slot and one rate token of ``group`` for one attempt (``async with``)."""
        return _Slot(self, group)

    async def enter(self, group: ApiGroup) -> None:
        """Take a concurrency slot and one rate token of ``group`` (give the slot back with :meth:`leave`)."""
        adaptive = self._concurrency[group]
        await adaptive.acquire()
        try:
            limiter = self._limiters[group]
            if limiter is not None:
                await limiter.acquire()
            else:
                # without a rate limit a 429 wait is still everyone's wait
                pause = self._paused_until.get(group, -math.inf) - self._clock()
                if pause > 0:
                    await self._sleep(pause)
        except BaseException:
            adaptive.release()
            raise

    def leave(self, group: ApiGroup) -> None:
        """Give back the concurrency slot taken by :meth:`enter`."""
        self._concurrency[group].release()

    def on_success(self, group: ApiGroup) -> None:
        """Tell the group's concurrency that a request succeeded (it may grow by one)."""
        self._concurrency[group].on_success()

    def on_throttled(self, group: ApiGroup, retry_after: float | None) -> None:
        """A 429: halve concurrency and, when the service said how long, make the whole group wait."""
        self._concurrency[group].on_overload()
        if retry_after and retry_after > 0:
            limiter = self._limiters[group]
            if limiter is not None:
                limiter.pause(retry_after)
            else:
                until = self._clock() + retry_after
                if until > self._paused_until.get(group, -math.inf):
                    self._paused_until[group] = until

    def on_server_error(self, group: ApiGroup) -> None:
        """A 5xx or a dropped connection: the service is struggling, send less at once."""
        self._concurrency[group].on_overload()


class _Slot(AbstractAsyncContextManager[None]):
    """``Pacer.slot``: a class, not a generator context manager (it is entered once per request)."""

    __slots__ = ("_group", "_pacer")

    def __init__(self, pacer: Pacer, group: ApiGroup) -> None:
        self._pacer = pacer
        self._group = group

    async def __aenter__(self) -> None:
        await self._pacer.enter(self._group)

    async def __aexit__(self, *exc: object) -> None:
        self._pacer.leave(self._group)
