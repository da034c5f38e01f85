from __future__ import annotations

import pytest
from aioresponses import aioresponses

from cvbulk.client import Pacer, PredictionClient, RetryPolicy, TrainingClient, _http

from ._support import ENDPOINT, KEY, Recorder, StepClock


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def mock(monkeypatch):
    # aioresponses answers in place of aiohttp: the clients made under it send through aiohttp, not the
    # lean transport of JSON requests (tests/client/test_lean.py and the live tests cover that one).
    monkeypatch.setattr(_http, "LEAN_TRANSPORT", False)
    with aioresponses() as m:
        yield Recorder(m)


def quick_retry(clock: StepClock, **kwargs) -> RetryPolicy:
    """Retries on the step clock with the full jitter drawn at its top (deterministic waits)."""
    return RetryPolicy(random=lambda: 1.0, sleep=clock.sleep, clock=clock, **kwargs)


@pytest.fixture
async def training(mock, clock):
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    async with TrainingClient(ENDPOINT, KEY, retry=quick_retry(clock), pacer=pacer) as client:
        yield client


@pytest.fixture
async def prediction(mock, clock):
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    async with PredictionClient(ENDPOINT, KEY, retry=quick_retry(clock), pacer=pacer) as client:
        yield client
