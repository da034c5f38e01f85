from __future__ import annotations

from pathlib import Path

import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests.conftest import SUMMARY_PROPERTY

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"


@pytest.fixture(scope="module")
def emulator_thread():
    with EmulatorThread(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def samples() -> Path:
    return SAMPLES


# The parity figure (test_parity.py), printed in the run's summary even when every test passes: the test puts
# it in the stash, its report carries it to tests/conftest.py (in the main process, under pytest-xdist too).
PARITY_REPORT = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = item.config.stash.get(PARITY_REPORT, None)
    if report and call.when == "call":
        del item.config.stash[PARITY_REPORT]
        outcome.get_result().user_properties.append(
            (SUMMARY_PROPERTY, ("emulator parity with the recorded real-service sessions", report))
        )
