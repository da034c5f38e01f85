"""RateLimiter (GCRA), AdaptiveConcurrency (AIMD) and Pacer, on virtual time."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.client import TIER_RATES, AdaptiveConcurrency, ApiGroup, Pacer, RateLimiter

from ._support import EPS, KEY, VirtualClock, max_in_any_window

async def test_100_acquisitions_at_10_per_second_take_at_least_9_9_seconds():
    clock = VirtualClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def main() -> None:
        for _ in range(100):
            await limiter.acquire()
            times.append(clock())

    await clock.run(main)
    assert times[0] == 0.0
    assert times[-1] - times[0] >= 9.9 - EPS
    assert times[-1] == pytest.approx(9.9)
    assert max_in_any_window(times) == 10


async def test_50_concurrent_tasks_never_exceed_the_rate():
    clock = VirtualClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def worker() -> None:
        for _ in range(4):
            await limiter.acquire()
            times.append(clock())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(worker)

    await clock.run(main)
    assert len(times) == 200
    assert max_in_any_window(times) <= 10
    assert max(times) >= 19.9 - EPS
    # and it does not go slower than asked either: every 1-s window is full
    assert max(times) == pytest.approx(19.9)


async def test_burst_lets_that_many_through_at_once_then_paces():
    clock = VirtualClock()
    limiter = RateLimiter(2, burst=5, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def main() -> None:
        for _ in range(9):
            await limiter.acquire()
            times.append(clock())

    await clock.run(main)
    assert times[:5] == [0.0] * 5
    assert times[5:] == pytest.approx([0.5, 1.0, 1.5, 2.0])


async def test_pause_holds_everyone_including_those_already_waiting():
    clock = VirtualClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def worker() -> None:
        await limiter.acquire()
        times.append(clock())

    async def main() -> None:
        await limiter.acquire()  # t=0
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(worker)  # reserved for 0.1, 0.2, 0.3
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            assert not times
            limiter.pause(2.0)  # a 429 with Retry-After: 2 at t=0
            limiter.pause(1.0)  # a shorter pause does not shorten it

    await clock.run(main)
    assert min(times) >= 2.0
    assert sorted(times) == pytest.approx([2.0, 2.1, 2.2])


async def test_cancelled_waiter_gives_its_slot_back():
    clock = VirtualClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)

    async def main() -> float:
        await limiter.acquire()  # t=0, next slot at 1
        with anyio.move_on_after(0):  # cancelled before its slot
            await limiter.acquire()
        await limiter.acquire()
        return clock()

    assert await clock.run(main) == 1.0


def test_limiter_arguments_are_checked():
    for rate in (0, -1, float("inf")):
        with pytest.raises(ValueError):
            RateLimiter(rate)
    with pytest.raises(ValueError):
        RateLimiter(1, burst=0)


async def test_aimd_additive_increase_multiplicative_decrease():
    now = [0.0]
    ac = AdaptiveConcurrency(8, minimum=2, maximum=10, cooldown=1.0, clock=lambda: now[0])
    for _ in range(8):
        ac.on_success()
    assert ac.limit == 9  # +1 after `limit` successes
    for _ in range(9):
        ac.on_success()
    assert ac.limit == 10
    for _ in range(100):
        ac.on_success()
    assert ac.limit == 10  # capped at maximum
    ac.on_overload()
    assert ac.limit == 5
    ac.on_overload()  # same burst of 429s: counted once
    assert ac.limit == 5
    now[0] = 1.5
    ac.on_overload()
    assert ac.limit == 2
    now[0] = 3.0
    ac.on_overload()
    assert ac.limit == 2  # never under minimum
    with pytest.raises(ValueError):
        AdaptiveConcurrency(1, minimum=2, maximum=4)


async def test_aimd_slots_never_exceed_the_limit_and_follow_it():
    ac = AdaptiveConcurrency(3, minimum=1, maximum=4, cooldown=0.0)
    in_flight = 0
    peak: list[int] = []
    gate = anyio.Event()

    async def job() -> None:
        nonlocal in_flight
        async with ac.slot():
            in_flight += 1
            peak.append(in_flight)
            await gate.wait()
            in_flight -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(job)
            await anyio.wait_all_tasks_blocked()
            assert in_flight == 3 and ac.in_flight == 3
            ac.on_overload()  # limit 1: nobody new gets in until in flight drops under 1
            gate.set()
    assert max(peak) == 3
    assert ac.limit == 1 and ac.in_flight == 0


async def test_aimd_growth_lets_a_waiter_in():
    ac = AdaptiveConcurrency(1, minimum=1, maximum=2)
    entered = anyio.Event()
    release = anyio.Event()

    async def holder() -> None:
        async with ac.slot():
            await release.wait()

    async def second() -> None:
        async with ac.slot():
            entered.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert not entered.is_set()
            ac.on_success()  # 1 -> 2
            await entered.wait()
            release.set()


def test_pacer_tiers_have_the_documented_rates():
    s0 = Pacer.for_tier("S0", max_concurrency=8)
    assert {g: s0.limiter(g).rate for g in ApiGroup} == {
        ApiGroup.TRAINING: 10, ApiGroup.TRAIN_PROJECT: 10, ApiGroup.PREDICTION_STORE: 10,
        ApiGroup.PREDICTION_NOSTORE: 20,
    }
    f0 = Pacer.for_tier("F0")
    assert {f0.limiter(g).rate for g in ApiGroup} == {2}
    unlimited = Pacer.for_tier("unlimited", max_concurrency=5)
    assert all(unlimited.limiter(g) is None for g in ApiGroup)
    assert unlimited.concurrency(ApiGroup.TRAINING) == 5
    assert set(TIER_RATES) == {"F0", "S0", "unlimited"}
    with pytest.raises(ValueError):
        Pacer.for_tier("S1")


async def test_pacer_throttle_pauses_only_that_group_and_halves_its_concurrency():
    clock = VirtualClock()
    pacer = Pacer.for_tier("S0", max_concurrency=8, clock=clock, sleep=clock.sleep)
    times: dict[str, float] = {}

    async def main() -> None:
        async with pacer.slot(ApiGroup.TRAINING):
            pass
        pacer.on_throttled(ApiGroup.TRAINING, 3.0)
        async with pacer.slot(ApiGroup.PREDICTION_NOSTORE):
            times["prediction"] = clock()
        async with pacer.slot(ApiGroup.TRAINING):
            times["training"] = clock()

    await clock.run(main)
    assert times == {"prediction": 0.0, "training": 3.0}
    assert pacer.concurrency(ApiGroup.TRAINING) == 4
    assert pacer.concurrency(ApiGroup.PREDICTION_NOSTORE) == 8


async def test_unlimited_pacer_still_honours_a_429_wait():
    clock = VirtualClock()
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)

    async def main() -> float:
        pacer.on_throttled(ApiGroup.TRAINING, 2.0)
        async with pacer.slot(ApiGroup.TRAINING):
            return clock()

    assert await clock.run(main) == 2.0


def test_pacer_for_resource_is_shared_per_endpoint_and_key():
    a = Pacer.for_resource("http://127.0.0.1:1/", KEY, "F0")
    assert Pacer.for_resource("http://127.0.0.1:1", KEY, "F0") is a
    assert Pacer.for_resource("http://127.0.0.1:1", KEY + "x", "F0") is not a
    assert KEY not in repr(a) and KEY not in repr(Pacer._shared)


async def test_a_tick_wakes_the_callers_of_one_tick_together_never_before_their_slot():
    clock = VirtualClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep, tick=0.25)
    plain = RateLimiter(20)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(5):
            await limiter.acquire()
            starts.append(clock())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(worker)

    await clock.run(main)
    starts.sort()
    slots = [i / 20 for i in range(80)]  # what the evenly spread limiter gives
    assert starts[0] == 0.0 and all(s >= slot - EPS for s, slot in zip(starts, slots))
    assert all(abs(s * 4 - round(s * 4)) < 1e-6 for s in starts)  # on the 0.25 s grid
    assert len(set(starts)) == 17  # 80 starts, 17 wake-ups
    assert max_in_any_window(starts) <= 20  # the rate holds in every one-second window
    assert starts[-1] == pytest.approx(4.0)  # and the pace: 80 in 4 s, as without the tick
    assert repr(limiter) == "RateLimiter(rate=20.0, burst=1, tick=0.25)" and plain.tick == 0.0
    with pytest.raises(ValueError):
        RateLimiter(20, tick=-1)


async def test_on_the_real_clock_the_callers_of_a_tick_share_one_timer():
    """With asyncio's clock and sleep (a real run), the callers of one tick wait on one timer: each is released
    at its tick, never before, and a cancelled caller does not hold the others back."""
    import asyncio
    import time

    limiter = RateLimiter(100, tick=0.05)  # 5 slots a tick
    assert limiter._shared
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    starts: list[float] = []
    try:
        async def worker() -> None:
            await limiter.acquire()
            starts.append(time.monotonic())

        gave_up = anyio.CancelScope()

        async def quitter() -> None:
            with gave_up:
                await limiter.acquire()
                starts.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(worker)
            tg.start_soon(quitter)  # its slot is in the third tick: it gives up while it waits
            for _ in range(12):
                tg.start_soon(worker)
            await anyio.sleep(0)
            gave_up.cancel()
    finally:
        loop.call_at = call_at  # type: ignore[method-assign]
    assert len(starts) == 24 and gave_up.cancelled_caught
    ticks = sorted({round(s / 0.05) for s in starts})
    assert len(ticks) <= 7  # 25 slots over 5-6 ticks, not 25 wake-ups
    per_tick = [sum(1 for s in starts if round(s / 0.05) == t) for t in ticks]
    assert max(per_tick) <= 5  # a tick's worth at a time
    assert len(timers) <= 8  # one timer a tick, not one a caller


def test_tier_pacers_tick_only_predictions_that_fill_a_tick():
    s0, f0 = Pacer.for_tier("S0"), Pacer.for_tier("F0")
    assert s0.limiter(ApiGroup.PREDICTION_NOSTORE).tick == 0.25  # type: ignore[union-attr]
    assert s0.limiter(ApiGroup.PREDICTION_STORE).tick == 0.25  # type: ignore[union-attr]  # 10/s: 2-3 a tick
    assert s0.limiter(ApiGroup.TRAINING).tick == 0.0  # type: ignore[union-attr]
    assert f0.limiter(ApiGroup.PREDICTION_NOSTORE).tick == 0.0  # type: ignore[union-attr]  # 2/s: no gain
    assert Pacer.for_tier("S0", ticks={}).limiter(ApiGroup.PREDICTION_NOSTORE).tick == 0.0  # type: ignore[union-attr]
