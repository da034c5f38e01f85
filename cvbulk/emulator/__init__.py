"""A local, persistent Custom Vision service (training + prediction), in the way Azurite serves Azure
Storage: same paths, headers, bodies, status codes, error codes and limits, with a real small model.

    async with Emulator(EmulatorConfig(tier="S0")) as emu: ...      # in-process
    with EmulatorThread() as emu: ...                                # own loop in a thread (sync callers)
    python -m cvbulk emulator --port 0 --data DIR                    # a server
"""

from __future__ import annotations

import shlex

from ._config import (
    DEFAULT_PREDICTION_KEY,
    DEFAULT_PREDICTION_RESOURCE_ID,
    DEFAULT_TRAINING_KEY,
    KEY_ENV,
    TIER_LATENCY,
    TIERS,
    EmulatorConfig,
    Faults,
    Latency,
)
from ._server import Emulator, EmulatorThread

__all__ = [
    "Emulator",
    "EmulatorThread",
    "EmulatorConfig",
    "Faults",
    "Latency",
    "TIERS",
    "TIER_LATENCY",
    "KEY_ENV",
    "DEFAULT_TRAINING_KEY",
    "DEFAULT_PREDICTION_KEY",
    "DEFAULT_PREDICTION_RESOURCE_ID",
    "startup_line",
    "env_lines",
]


def startup_line(emulator: Emulator | EmulatorThread) -> str:
    """The first line ``cvbulk emulator`` prints once it listens (tests and benchmarks parse it: its
    format does not change)."""
    return (
        f"cvbulk emulator listening on {emulator.endpoint}  training-key={emulator.training_key}  "
        f"prediction-key={emulator.prediction_key}  prediction-resource-id={emulator.prediction_resource_id}"
    )


def env_lines(emulator: Emulator | EmulatorThread) -> str:
    """What follows the first line: the tier it plays, where image URIs are served, then ready-to-paste
    ``export VISION_...`` lines for cvbulk and the SDK samples."""
    latency = emulator.config.effective_latency
    tier = (f"# tier {emulator.config.tier}: latency {latency.per_request:g} s per call + "
            f"{latency.per_image:g} s per image")
    storage = f"# image URIs, export tokens and model links: {emulator.storage_endpoint} (signed, no key)"
    if latency.per_download:
        storage += f", {latency.per_download:g} s per download"
    values = [
        ("VISION_TRAINING_ENDPOINT", emulator.endpoint), ("VISION_TRAINING_KEY", emulator.training_key),
        ("VISION_PREDICTION_ENDPOINT", emulator.endpoint), ("VISION_PREDICTION_KEY", emulator.prediction_key),
        ("VISION_PREDICTION_RESOURCE_ID", emulator.prediction_resource_id),
    ]
    return "\n".join([tier, storage] + [f"export {name}={shlex.quote(value)}" for name, value in values])
