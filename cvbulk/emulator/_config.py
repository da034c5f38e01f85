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
    "TIER_LATENCY",
    "KEY_ENV",
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
    """Extra time the handler waits (asynchronously) before answering, in seconds: API calls wait
    ``per_request`` + ``per_image`` x images + ``per_mb`` x MB of body; the storage listener (image URIs,
    export tokens, model links) waits ``per_download`` before each answer."""

    per_request: float = 0.0
    per_image: float = 0.0
    per_mb: float = 0.0
    per_download: float = 0.0


# Latency the service showed, played by default with --tier F0 / S0 (unlimited stays instant).
# Source: the recorded real-service sessions (../shared/specs/customvision/recordings): the
# timestamps the service wrote put a PATCH 119 ms after the project it changes was created
# (CreateUpdateDeleteProject), an image of a batch ~140 ms after the previous one
# (GetImagesByIds: 17:55:45.455 -> .595) and a quick test answered within the same second as the
# stored prediction it wrote. Round numbers of that order: 0.1 s per call plus 0.05 s per image.
TIER_LATENCY: dict[str, Latency] = {
    "F0": Latency(per_request=0.1, per_image=0.05),
    "S0": Latency(per_request=0.1, per_image=0.05),
    "unlimited": Latency(),
}

# Keys may come from the environment instead of flags (flags are visible in ``ps``).
KEY_ENV = {"training": "CVBULK_EMULATOR_TRAINING_KEY", "prediction": "CVBULK_EMULATOR_PREDICTION_KEY"}


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
    storage_port: int = 0  # the listener of image URIs, export tokens and model links (0: a free port)
    data_dir: Path | None = None  # None: a temporary folder removed on exit
    tier: str = "unlimited"
    training_tps: float | None = None  # overrides the tier's training rates
    prediction_tps: float | None = None  # overrides the tier's prediction rates
    retry_after: bool = True  # send a Retry-After header with 429 answers
    training_key: str = DEFAULT_TRAINING_KEY
    prediction_key: str = DEFAULT_PREDICTION_KEY
    prediction_resource_id: str = DEFAULT_PREDICTION_RESOURCE_ID
    faults: Faults = field(default_factory=Faults)
    latency: Latency | None = None  # None: the tier's (TIER_LATENCY); Latency() for none at all
    seed: int = 0
    # Time a training takes at least, so that a poller sees ``Training`` (the service: minutes).
    training_seconds: float = 0.5
    # Lifetime of image URIs and export tokens (the service's SAS links: about 24 h).
    url_ttl_seconds: float = 24 * 3600.0
    # A connection that has not sent a whole request head within this time is closed; a body
    # that does not arrive within ``read_timeout`` is refused (half-open connections).
    header_timeout: float = 30.0
    read_timeout: float = 120.0
    # Largest request body: 64 images of 6 MB (the service's batch and image limits) and room
    # for the multipart framing; a base64 JSON batch of 64 full-size images does not fit.
    max_body_bytes: int = 64 * 6 * 1024 * 1024 + 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}: use one of {', '.join(TIERS)}")
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)
        if self.training_seconds < 0 or self.url_ttl_seconds <= 0:
            raise ValueError("training_seconds must be >= 0 and url_ttl_seconds > 0")

    @property
    def effective_latency(self) -> Latency:
        return self.latency if self.latency is not None else TIER_LATENCY[self.tier]

    def __repr__(self) -> str:  # keys stay out of reprs
        return (
            f"EmulatorConfig(host={self.host!r}, port={self.port}, storage_port={self.storage_port}, "
            f"data_dir={self.data_dir!r}, "
            f"tier={self.tier!r}, training_tps={self.training_tps}, prediction_tps={self.prediction_tps})"
        )

    @property
    def limits(self) -> TierLimits:
        return TIERS[self.tier]
