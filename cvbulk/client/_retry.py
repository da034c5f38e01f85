"""RetryPolicy: when to try again and how long to wait (full-jitter exponential backoff, Retry-After)."""

from __future__ import annotations

import random as _random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

import anyio

from ._errors import CustomVisionError, RateLimitedError, ServerError

__all__ = [
    "RetryPolicy", "RetryEvent", "RetryCause", "OnRetry", "retry_cause", "parse_retry_after",
    "parse_retry_after_message", "RETRYABLE_STATUSES",
]

#: Why a request is tried again: the service throttled it (429), failed (5xx), or did not answer at all.
RetryCause = Literal["throttled", "server error", "connection"]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# "... Please retry after 1 second." / "Retry after 30 seconds" / "retry after 0.5 seconds"
_RETRY_AFTER_TEXT = re.compile(r"retry\s+after\s+(\d+(?:\.\d+)?)\s*(?:second|sec|s\b)", re.IGNORECASE)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    wall = time.time() if now is None else now
    return max(0.0, when.timestamp() - wall)


def parse_retry_after_message(message: str | None) -> float | None:
    """Seconds from the 429 message text ("... Please retry after 1 second. ...")."""
    if not message:
        return None
    match = _RETRY_AFTER_TEXT.search(message)
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class RetryEvent:
    """What the client is about to do: wait ``wait_s`` seconds, then send ``operation`` again.

    ``attempt`` is the number of the attempt that just failed (1 for the first), ``cause`` says why
    (``"throttled"``: a 429, ``"server error"``: a 5xx, ``"connection"``: no answer or a timeout) and
    ``status`` is the HTTP status when there was an answer.
    """

    operation: str
    attempt: int
    wait_s: float
    cause: RetryCause
    status: int | None


#: The hook a client calls before each wait (``TrainingClient(..., on_retry=...)``); it must not block.
OnRetry = Callable[[RetryEvent], None]


def retry_cause(error: CustomVisionError) -> RetryCause:
    """The kind of a retryable error, as RetryEvent reports it."""
    if isinstance(error, RateLimitedError):
        return "throttled"
    if isinstance(error, ServerError):
        return "server error"
    return "connection"


@dataclass(frozen=True)
class RetryPolicy:
    """How a request is retried.

    Two budgets per request, kept apart because throttling is not an error:

    - errors (5xx, dropped connections, timeouts): ``max_attempts`` counts the attempts that failed so
      (the first one too), ``max_elapsed`` bounds the seconds from the first such failure, waits included;
    - throttling (429): the client waits as the service says for as long as ``max_throttle_wait`` seconds
      of waiting in all (per request); 429s never count against ``max_attempts``.

    Waits are ``random() * min(cap, base * 2 ** (retry - 1))`` (full jitter) unless the service named one
    (Retry-After, or the 429 message), which is honoured as given. ``random``, ``sleep`` and ``clock`` are
    injectable for tests and simulations. Only errors marked ``retryable`` are retried; when a budget runs
    out the client raises ``RetryBudgetExhausted`` (with ``max_attempts=1`` it raises the error itself and
    retries nothing, not even a 429).
    """

    max_attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    max_elapsed: float = 300.0
    max_throttle_wait: float = 600.0
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base, self.cap, self.max_elapsed, self.max_throttle_wait) < 0:
            raise ValueError("base, cap, max_elapsed and max_throttle_wait must not be negative")

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """A policy that sends each request once and raises whatever goes wrong."""
        return cls(max_attempts=1)

    def backoff(self, retry: int) -> float:
        """The jittered wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.cap, self.base * (2.0 ** min(retry - 1, 62)))
        return self.random() * ceiling

    def delay_for(self, error: CustomVisionError, retry: int) -> float:
        """How long to wait before retrying after ``error``: the service's word first, else backoff."""
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return float(hinted)
        return self.backoff(retry)
