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


# The parity figure (test_parity.py), printed in the run's summary even when every test passes.
PARITY_REPORT = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    report = config.stash.get(PARITY_REPORT, None)
    if report:
        terminalreporter.write_sep("-", "emulator parity with the recorded real-service sessions")
        terminalreporter.write_line(report)
