"""Settings of an emulator instance: keys, tier, rate limits and misbehaviour switches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_TRAINING_KEY",
    "DEFAULT_PREDICTION_KEY",
    "DEFAULT_PREDICTION_RESOURCE_ID",
    "TIERS",
    "EmulatorConfig",
    "Faults",
    "Latency",
    "TierLimits",
]

# Well-known, printed at start-up on purpose (like Azurite's account key): the emulator is local only.
DEFAULT_TRAINING_KEY = "cvbulk-emulator-training-key"
DEFAULT_PREDICTION_KEY = "cvbulk-emulator-prediction-key"
DEFAULT_PREDICTION_RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cvbulk-emulator"
    "/providers/Microsoft.CognitiveServices/accounts/cvbulk-emulator-prediction"
)


@dataclass(frozen=True)
class Faults:
    """Misbehaviour on request; all off by default."""

    error_rate: float = 0.0  # share of API requests answered 500/503
    drop_rate: float = 0.0  # share of connections dropped mid-request (no answer at all)
    throttle_burst: int = 0  # the next N API requests are answered 429
    # Of the dropped requests, the share dropped after the work was done (images stored, project
    # created): the case where a client's retry meets its own first attempt (OKDuplicate).
    drop_after_work: float = 0.5


@dataclass(frozen=True)
class Latency:
    """Extra time the handler waits (asynchronously) before answering, in seconds."""

    per_request: float = 0.0
    per_image: float = 0.0
    per_mb: float = 0.0


@dataclass(frozen=True)
class TierLimits:
    """The service's published limits for one pricing tier (None = unlimited)."""

    name: str
    training_tps: float | None
    train_project_tps: float | None
    prediction_store_tps: float | None
    prediction_nostore_tps: float | None
    max_projects: int | None
    max_tags_per_project: int | None
    max_images_per_project: int | None
    max_iterations_per_project: int | None


TIERS: dict[str, TierLimits] = {
    "F0": TierLimits("F0", 2, 2, 2, 2, 2, 50, 5_000, 20),
    "S0": TierLimits("S0", 10, 10, 10, 20, 100, 500, 100_000, 20),
    "unlimited": TierLimits("unlimited", None, None, None, None, None, None, None, None),
}


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None  # None: a temporary folder removed on exit
    tier: str = "unlimited"
    training_tps: float | None = None  # overrides the tier's training rates
    prediction_tps: float | None = None  # overrides the tier's prediction rates
    retry_after: bool = True  # send a Retry-After header with 429 answers
    training_key: str = DEFAULT_TRAINING_KEY
    prediction_key: str = DEFAULT_PREDICTION_KEY
    prediction_resource_id: str = DEFAULT_PREDICTION_RESOURCE_ID
    faults: Faults = field(default_factory=Faults)
    latency: Latency = field(default_factory=Latency)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}: use one of {', '.join(TIERS)}")
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)

    def __repr__(self) -> str:  # keys stay out of reprs
        return (
            f"EmulatorConfig(host={self.host!r}, port={self.port}, data_dir={self.data_dir!r}, "
            f"tier={self.tier!r}, training_tps={self.training_tps}, prediction_tps={self.prediction_tps})"
        )

    @property
    def limits(self) -> TierLimits:
        return TIERS[self.tier]
