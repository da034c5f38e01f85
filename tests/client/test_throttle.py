"""Throttling is not an error: a 429 storm is waited out as the service says, within its own budget,
and every wait is told through the on_retry hook."""

from __future__ import annotations

import pickle

import aiohttp
import pytest

from cvbulk.client import (
    Pacer,
    RateLimitedError,
    RetryBudgetExhausted,
    RetryEvent,
    RetryPolicy,
    ServerError,
    TrainingClient,
)

from ._support import ENDPOINT, KEY
from .test_retry import TAGS, THROTTLED, P


def client_on(clock, events: list[RetryEvent] | None = None, **policy) -> TrainingClient:
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(random=lambda: 1.0, sleep=clock.sleep, clock=clock, **policy)
    return TrainingClient(ENDPOINT, KEY, retry=retry, pacer=pacer,
                          on_retry=events.append if events is not None else None)


async def test_a_storm_of_40_429s_at_the_start_is_waited_out(mock, clock):
    events: list[RetryEvent] = []
    for _ in range(40):
        mock.add("GET", TAGS, status=429, payload=THROTTLED, headers={"Retry-After": "2"})
    mock.add("GET", TAGS, payload=[{"id": "t", "name": "a", "type": "Regular", "imageCount": 0}])
    async with client_on(clock, events) as client:
        tags = await client.get_tags(P)
    assert [t.name for t in tags] == ["a"]
    assert len(mock.calls) == 41 and clock.sleeps == [2.0] * 40
    assert client.stats.throttled == 40 and client.stats.retries == 40
    assert [e.attempt for e in events] == list(range(1, 41))
    assert {(e.operation, e.wait_s, e.cause, e.status) for e in events} == {("GetTags", 2.0, "throttled", 429)}


async def test_429s_do_not_use_the_error_budget(mock, clock):
    """Two errors allowed; 429s in between do not count."""
    mock.add("GET", TAGS, status=503, payload={"code": "ErrorUnknown", "message": "busy"})
    for _ in range(10):
        mock.add("GET", TAGS, status=429, payload=THROTTLED)
    mock.add("GET", TAGS, payload=[])
    events: list[RetryEvent] = []
    async with client_on(clock, events, max_attempts=2, base=0.5, cap=0.5) as client:
        assert await client.get_tags(P) == []
    assert [e.cause for e in events] == ["server error"] + ["throttled"] * 10
    assert events[0].status == 503 and events[0].wait_s == 0.5


async def test_the_throttle_budget_ends_a_storm_that_never_ends(mock, clock):
    mock.add("GET", TAGS, status=429, payload=THROTTLED, headers={"Retry-After": "30"}, repeat=True)
    events: list[RetryEvent] = []
    async with client_on(clock, events, max_throttle_wait=100.0) as client:
        with pytest.raises(RetryBudgetExhausted) as info:
            await client.get_tags(P)
    assert isinstance(info.value.last_error, RateLimitedError)
    assert clock.sleeps == [30.0] * 3 and info.value.attempts == 4  # a 4th wait would pass 100 s
    assert len(events) == 3 and info.value.throttled_for == 90.0
    assert str(info.value).startswith("GetTags: HTTP 429 - still throttled after 4 attempts and 90 s of waiting")
    again = pickle.loads(pickle.dumps(info.value))
    assert again.throttled_for == 90.0 and str(again) == str(info.value)


def test_the_default_throttle_budget_is_generous():
    policy = RetryPolicy()
    assert policy.max_throttle_wait >= 600.0 and policy.max_attempts == 8


async def test_no_retries_means_a_429_is_raised(mock, clock):
    mock.add("GET", TAGS, status=429, payload=THROTTLED)
    async with client_on(clock, max_attempts=1) as client:
        with pytest.raises(RateLimitedError):
            await client.get_tags(P)


async def test_events_for_errors_and_dropped_connections(mock, clock):
    mock.add("GET", TAGS, status=500, payload={"code": "ErrorUnknown", "message": "x"})
    mock.fail("GET", TAGS, aiohttp.ServerDisconnectedError())
    mock.add("GET", TAGS, payload=[])
    events: list[RetryEvent] = []
    async with client_on(clock, events, base=1.0, cap=8.0) as client:
        await client.get_tags(P)
    assert [(e.attempt, e.cause, e.status, e.wait_s) for e in events] == [
        (1, "server error", 500, 1.0), (2, "connection", None, 2.0)]


async def test_the_hook_can_be_set_after_construction_and_its_errors_propagate(mock, clock):
    mock.add("GET", TAGS, status=503, payload={"code": "ErrorUnknown", "message": "x"})
    async with client_on(clock) as client:
        assert client.on_retry is None

        def hook(event: RetryEvent) -> None:
            raise KeyboardInterrupt  # a hook that stops the program is obeyed

        client.on_retry = hook
        with pytest.raises(KeyboardInterrupt):
            await client.get_tags(P)


async def test_server_error_with_retry_after_waits_as_told(mock, clock):
    mock.add("GET", TAGS, status=503, payload={"code": "ErrorUnknown", "message": "x"}, headers={"Retry-After": "3"})
    mock.add("GET", TAGS, payload=[])
    events: list[RetryEvent] = []
    async with client_on(clock, events) as client:
        await client.get_tags(P)
    assert clock.sleeps == [3.0] and events[0].cause == "server error"
    assert not isinstance(ServerError("x"), RateLimitedError)
