"""Per-tier request rates (token buckets per API group) and the 429 answer Azure gives."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ._config import EmulatorConfig

__all__ = ["RateLimits", "GROUPS", "throttled_body"]

# The service meters these separately (see DESIGN.md, "Rate limits per resource").
GROUPS = ("training", "train_project", "prediction_store", "prediction_nostore")


@dataclass
class _Bucket:
    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0.0 when a request may go, else the seconds until one token is back."""
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimits:
    """One token bucket per group; the burst is one second's worth, as the service allows."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._buckets: dict[str, _Bucket | None] = {}
        self.configure(config.tier, config.training_tps, config.prediction_tps)

    def configure(self, tier: str, training_tps: float | None, prediction_tps: float | None) -> None:
        from ._config import TIERS

        limits = TIERS[tier]
        self.tier = tier
        rates = {
            "training": training_tps if training_tps is not None else limits.training_tps,
            "train_project": training_tps if training_tps is not None else limits.train_project_tps,
            "prediction_store": prediction_tps if prediction_tps is not None else limits.prediction_store_tps,
            "prediction_nostore": prediction_tps if prediction_tps is not None else limits.prediction_nostore_tps,
        }
        now = time.monotonic()
        self._buckets = {
            g: (_Bucket(float(r), max(1.0, float(r)), now) if r else None) for g, r in rates.items()
        }

    def check(self, group: str) -> int:
        """0 when the request may go, else the whole seconds to wait (at least 1)."""
        bucket = self._buckets.get(group)
        if bucket is None:
            return 0
        wait = bucket.take(time.monotonic())
        return 0 if wait == 0.0 else max(1, math.ceil(wait))


def throttled_body(operation: str, api: str, tier: str, seconds: int) -> dict:
    tier_name = "S0" if tier == "unlimited" else tier
    unit = "second" if seconds == 1 else "seconds"
    return {
        "error": {
            "code": "429",
            "message": (
                f"Requests to the {operation} Operation under Custom Vision {api} API have exceeded rate "
                f"limit of your current CustomVision {tier_name} pricing tier. Please retry after "
                f"{seconds} {unit}. Please contact Azure support service if you would like to further "
                "increase the default rate limit."
            ),
        }
    }
