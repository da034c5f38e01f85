"""RetryPolicy: when to try again and how long to wait (full-jitter exponential backoff, Retry-After)."""

from __future__ import annotations

import random as _random
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable

import anyio

from ._errors import CustomVisionError

__all__ = ["RetryPolicy", "parse_retry_after", "parse_retry_after_message", "RETRYABLE_STATUSES"]

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
class RetryPolicy:
    """How a request is retried.

    ``max_attempts`` counts every attempt (the first one too); ``max_elapsed`` bounds the time spent on one
    request including waits. Waits are ``random() * min(cap, base * 2 ** (retry - 1))`` (full jitter) unless
    the service named one (Retry-After, or the 429 message), which is honoured as given.
    ``random``, ``sleep`` and ``clock`` are injectable for tests and simulations. Only errors marked
    ``retryable`` (429, 5xx, transport) are retried; when the budget runs out the client raises
    ``RetryBudgetExhausted`` (with ``max_attempts=1`` it raises the error itself).
    """

    max_attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    max_elapsed: float = 300.0
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_elapsed < 0:
            raise ValueError("base, cap and max_elapsed must not be negative")

    @classmethod
    def no_retries(cls) -> "RetryPolicy":
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
