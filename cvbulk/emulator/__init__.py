"""A local, persistent Custom Vision service (training + prediction), in the way Azurite serves Azure
Storage: same paths, headers, bodies, status codes, error codes and limits, with a real small model.

    async with Emulator(EmulatorConfig(tier="S0")) as emu: ...      # in-process
    with EmulatorThread() as emu: ...                                # own loop in a thread (sync callers)
    python -m cvbulk emulator --port 0 --data DIR                    # a server
"""

from __future__ import annotations

from ._config import (
    DEFAULT_PREDICTION_KEY,
    DEFAULT_PREDICTION_RESOURCE_ID,
    DEFAULT_TRAINING_KEY,
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
    "DEFAULT_TRAINING_KEY",
    "DEFAULT_PREDICTION_KEY",
    "DEFAULT_PREDICTION_RESOURCE_ID",
    "startup_line",
]


def startup_line(emulator: Emulator | EmulatorThread) -> str:
    """The one line ``cvbulk emulator`` prints once it listens."""
    return (
        f"cvbulk emulator listening on {emulator.endpoint}  training-key={emulator.training_key}  "
        f"prediction-key={emulator.prediction_key}  prediction-resource-id={emulator.prediction_resource_id}"
    )
