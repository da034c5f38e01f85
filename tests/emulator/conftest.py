from __future__ import annotations

from pathlib import Path

import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"


@pytest.fixture(scope="module")
def emulator_thread():
    with EmulatorThread(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def samples() -> Path:
    return SAMPLES
