"""Shared fixtures: a real emulator and a training client connected to it.

    async def test_x(emulator, training_client): ...

``emulator`` is an ``EmulatorThread`` (its own event loop in a thread) on 127.0.0.1, a free port, data
in the test's tmp folder, tier "unlimited". A thread rather than an in-process ``Emulator`` because
pytest-asyncio runs an async fixture's set-up and tear-down in different tasks, and the emulator's
task group must be left in the task that entered it; a test that wants its own ``Emulator`` (faults,
tiers) starts one with ``async with Emulator(...)`` inside the test body.
``training_client`` has no rate limit (Pacer "unlimited") and a short retry budget, so a test that
goes wrong fails fast instead of backing off for minutes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# What a test hands to the end of the run rides on its report's user_properties, the one channel that reaches
# the main process from a pytest-xdist worker (`make test` runs on every core):
SUMMARY_PROPERTY = "cvbulk-summary"  # (title, text): printed in the run's summary, even when every test passes
MEASURED_PROPERTY = "cvbulk-measured"  # {row name: row}: the reliability table (tests/reliability/conftest.py)
_summaries: dict[str, str] = {}
_measured: dict[str, dict[str, Any]] = {}


# The longest test files, longest first (a run under load on 2 cores, 2026-11-30: 140 s down to 35 s). Under
# pytest-xdist (`make test`: -n logical --dist loadfile --no-loadscope-reorder) a worker takes a whole file at a
# time in this order, so the long ones start first and the short ones fill in behind them: the workers end
# together instead of one waiting on a long file handed out last. A file missing here just runs after these.
LONGEST_FIRST = (
    "tests/storage/test_pipeline_cli.py",
    "tests/reliability/test_crash_resume.py",
    "tests/cli/test_install.py",
    "tests/pipeline/export/test_roundtrip.py",
    "tests/cli/test_cmd_demo.py",
    "tests/emulator/test_trainer.py",
    "tests/cli/test_cmd_upload.py",
    "tests/emulator/test_parity.py",
    "tests/reliability/test_secrets.py",
    "tests/cli/test_quickstart_steps.py",
    "tests/pipeline/test_journal.py",
    "tests/reliability/test_faults_upload.py",
    "tests/reliability/test_emulator_load.py",
    "tests/reliability/test_hostile_report.py",
    "tests/cli/test_cmd_export_kill.py",
    "tests/reliability/test_faults_predict.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return  # one process: the usual order
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: file order kept


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == SUMMARY_PROPERTY:
            title, text = value
            _summaries[title] = text
        elif name == MEASURED_PROPERTY:
            _measured.update(value)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for title, text in _summaries.items():
        terminalreporter.write_sep("-", title)
        terminalreporter.write_line(text)


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    target = os.environ.get("CVBULK_RELIABILITY_TABLE")
    if target and _measured and not hasattr(session.config, "workerinput"):  # the main process writes it
        Path(target).write_text(json.dumps(_measured, indent=2, sort_keys=True), encoding="utf-8")


@pytest.fixture
def emulator(tmp_path):
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    with EmulatorThread(EmulatorConfig(port=0, data_dir=tmp_path / "emulator-data")) as emu:
        yield emu


@pytest.fixture
async def training_client(emulator):
    from cvbulk.client import Pacer, RetryPolicy, TrainingClient

    retry = RetryPolicy(max_attempts=4, base=0.05, cap=0.5, max_elapsed=20.0)
    async with TrainingClient(
        emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited"), retry=retry
    ) as client:
        yield client
