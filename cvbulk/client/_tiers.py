"""The pricing tiers of a Custom Vision resource: rates per API group and the published limits.

One table for all of cvbulk: ``Pacer.for_tier`` takes its rates from here, and the CLI its ``--tier``
choices. Figures from the service's limits page (DESIGN.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ApiGroup", "Tier", "TIERS", "TIER_RATES"]


class ApiGroup(str, enum.Enum):
    """The groups the service counts separately against a resource's rate limit."""

    TRAINING = "training"
    TRAIN_PROJECT = "train_project"
    PREDICTION_STORE = "prediction_store"
    PREDICTION_NOSTORE = "prediction_nostore"


@dataclass(frozen=True)
class Tier:
    """Limits of one pricing tier; None means no limit (the ``unlimited`` pseudo-tier of the emulator)."""

    name: str
    training_tps: float | None  # Training API calls per second, except TrainProject
    train_project_tps: float | None  # TrainProject calls per second
    prediction_store_tps: float | None  # Classify/Detect that store the image
    prediction_nostore_tps: float | None  # the /nostore variants
    max_projects: int | None
    max_tags_per_project: int | None
    max_images_per_project: int | None
    max_iterations_per_project: int | None

    def rate(self, group: ApiGroup) -> float | None:
        """Transactions per second allowed for one API group."""
        return {
            ApiGroup.TRAINING: self.training_tps,
            ApiGroup.TRAIN_PROJECT: self.train_project_tps,
            ApiGroup.PREDICTION_STORE: self.prediction_store_tps,
            ApiGroup.PREDICTION_NOSTORE: self.prediction_nostore_tps,
        }[group]


TIERS: dict[str, Tier] = {
    "F0": Tier("F0", 2.0, 2.0, 2.0, 2.0, 2, 50, 5_000, 20),
    "S0": Tier("S0", 10.0, 10.0, 10.0, 20.0, 100, 500, 100_000, 20),
    "unlimited": Tier("unlimited", None, None, None, None, None, None, None, None),
}

#: The rates of TIERS per API group (kept for the callers that index rates by group).
TIER_RATES: dict[str, dict[ApiGroup, float | None]] = {
    name: {group: tier.rate(group) for group in ApiGroup} for name, tier in TIERS.items()
}
