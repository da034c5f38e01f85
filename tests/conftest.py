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

import pytest


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
