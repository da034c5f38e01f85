"""ClientStats: counters and latency percentiles for reports and benchmarks."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["ClientStats"]


class ClientStats:
    """Counts every HTTP attempt a client makes.

    Latencies go into a bounded reservoir (Vitter's algorithm R), so memory stays flat over millions of
    requests while percentiles stay representative; ``max`` is exact. One instance may be shared by several
    clients to sum them up.
    """

    __slots__ = (
        "_capacity",
        "_max",
        "_rng",
        "_samples",
        "_seen",
        "bytes_received",
        "bytes_sent",
        "requests",
        "retries",
        "server_errors",
        "throttled",
        "transport_errors",
    )

    def __init__(self, reservoir_size: int = 4096, *, seed: int = 0) -> None:
        if reservoir_size < 1:
            raise ValueError("reservoir_size must be at least 1")
        self.requests = 0          # HTTP attempts sent (first tries and retries)
        self.retries = 0           # attempts that were retries
        self.throttled = 0         # 429 answers
        self.server_errors = 0     # 5xx answers
        self.transport_errors = 0  # no answer: connection failed or dropped, or timed out
        self.bytes_sent = 0
        self.bytes_received = 0
        self._samples: list[float] = []
        self._seen = 0
        self._max = 0.0
        self._capacity = reservoir_size
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        return (
            f"ClientStats(requests={self.requests}, retries={self.retries}, throttled={self.throttled}, "
            f"server_errors={self.server_errors}, transport_errors={self.transport_errors})"
        )

    def record_latency(self, seconds: float) -> None:
        """Count one answered request's latency (kept in a bounded reservoir sample)."""
        self._seen += 1
        if seconds > self._max:
            self._max = seconds
        if len(self._samples) < self._capacity:
            self._samples.append(seconds)
        else:
            slot = self._rng.randrange(self._seen)
            if slot < self._capacity:
                self._samples[slot] = seconds

    def latency_ms(self) -> dict[str, float]:
        """p50, p90, p99 and max latency in milliseconds (0.0 when nothing was measured)."""
        ordered = sorted(self._samples)

        def pct(q: float) -> float:
            if not ordered:
                return 0.0
            # nearest-rank percentile
            index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
            return round(ordered[index] * 1000.0, 3)

        return {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": round(self._max * 1000.0, 3)}

    def snapshot(self) -> dict[str, Any]:
        """The counters and latency percentiles (ms) as a plain dict, for reports."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "latency_ms": self.latency_ms(),
        }
