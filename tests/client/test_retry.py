"""Retries: which answers are retried, how long we wait (Retry-After, message text, backoff), the budget."""

from __future__ import annotations

import asyncio
from email.utils import format_datetime
from datetime import datetime, timezone

import aiohttp
import pytest

from cvbulk.client import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    NotFoundError,
    Pacer,
    RateLimitedError,
    RequestTimeoutError,
    RetryBudgetExhausted,
    RetryPolicy,
    ServerError,
    TrainingClient,
    parse_retry_after,
    parse_retry_after_message,
)

from ._support import ENDPOINT, KEY, TRAINING_BASE as B

P = "p1"
TAGS = f"{B}/projects/{P}/tags"
THROTTLED = {"error": {"code": "429", "message": (
    "Requests to the GetTags Operation under Custom Vision Training API have exceeded rate limit of your "
    "current CustomVision.Training F0 pricing tier. Please retry after 1 second. Please contact Azure support "
    "service if you would like to further increase the default rate limit.")}}


async def test_429_with_retry_after_header_waits_at_least_that_long(training, mock, clock):
    times: list[float] = []
    mock.add("GET", TAGS, status=429, payload={"error": {"code": "429", "message": "slow down"}},
             headers={"Retry-After": "2"}, clock=clock, times=times)
    mock.add("GET", TAGS, payload=[], clock=clock, times=times)
    assert await training.get_tags(P) == []
    assert times[0] == 0.0 and times[1] - times[0] >= 2.0
    assert clock.sleeps == [2.0]
    snap = training.stats.snapshot()
    assert (snap["requests"], snap["retries"], snap["throttled"]) == (2, 1, 1)


async def test_429_with_only_the_message_text_waits_the_seconds_it_names(training, mock, clock):
    times: list[float] = []
    mock.add("GET", TAGS, status=429, payload=THROTTLED, clock=clock, times=times)
    mock.add("GET", TAGS, payload=[], clock=clock, times=times)
    await training.get_tags(P)
    assert times[1] - times[0] >= 1.0
    assert clock.sleeps == [1.0]


async def test_429_with_http_date_retry_after(training, mock, clock):
    mock.add("GET", TAGS, status=429, body="", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    mock.add("GET", TAGS, payload=[])
    await training.get_tags(P)
    assert clock.sleeps == [0.0]  # a date in the past: go now


async def test_429_without_any_hint_backs_off_with_jitter(mock, clock):
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(base=0.5, cap=4.0, random=lambda: 0.5, sleep=clock.sleep, clock=clock)
    for _ in range(5):
        mock.add("GET", TAGS, status=429, body="Too many requests")
    mock.add("GET", TAGS, payload=[])
    async with TrainingClient(ENDPOINT, KEY, retry=retry, pacer=pacer) as client:
        await client.get_tags(P)
    # full jitter: random() * min(cap, base * 2 ** n) with random() pinned at 0.5
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried(training, mock, status):
    mock.add("GET", TAGS, status=status, payload={"code": "ErrorUnknown", "message": "boom"})
    mock.add("GET", TAGS, payload=[])
    assert await training.get_tags(P) == []
    assert training.stats.server_errors == 1 and training.stats.retries == 1


@pytest.mark.parametrize("status, cls", [(400, BadRequestError), (401, AuthenticationError),
                                         (403, AuthenticationError), (404, NotFoundError)])
async def test_client_errors_are_never_retried(training, mock, status, cls):
    mock.add("GET", TAGS, status=status, payload={"code": "X", "message": "no"}, repeat=True)
    with pytest.raises(cls):
        await training.get_tags(P)
    assert len(mock.calls) == 1 and training.stats.retries == 0


async def test_retry_budget_exhausted_after_max_attempts(mock, clock):
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(max_attempts=3, random=lambda: 1.0, sleep=clock.sleep, clock=clock)
    mock.add("GET", TAGS, status=503, payload={"code": "ErrorUnknown", "message": "down"}, repeat=True)
    async with TrainingClient(ENDPOINT, KEY, retry=retry, pacer=pacer) as client:
        with pytest.raises(RetryBudgetExhausted) as info:
            await client.get_tags(P)
    err = info.value
    assert err.attempts == 3 and isinstance(err.last_error, ServerError)
    assert err.status == 503 and err.code == "ErrorUnknown" and err.operation == "GetTags"
    assert len(mock.calls) == 3 and client.stats.retries == 2


async def test_retry_budget_exhausted_by_elapsed_time(mock, clock):
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(max_elapsed=10.0, sleep=clock.sleep, clock=clock)
    mock.add("GET", TAGS, status=503, payload={"code": "ErrorUnknown", "message": "down"},
             headers={"Retry-After": "60"}, repeat=True)
    async with TrainingClient(ENDPOINT, KEY, retry=retry, pacer=pacer) as client:
        with pytest.raises(RetryBudgetExhausted) as info:
            await client.get_tags(P)
    assert info.value.attempts == 1 and isinstance(info.value.last_error, ServerError)
    assert info.value.last_error.retry_after == 60.0
    assert clock.sleeps == []  # it does not wait for a retry it will never make


async def test_throttle_budget_exhausted_by_a_wait_longer_than_it(mock, clock):
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(max_throttle_wait=10.0, sleep=clock.sleep, clock=clock)
    mock.add("GET", TAGS, status=429, payload=THROTTLED, headers={"Retry-After": "60"}, repeat=True)
    async with TrainingClient(ENDPOINT, KEY, retry=retry, pacer=pacer) as client:
        with pytest.raises(RetryBudgetExhausted) as info:
            await client.get_tags(P)
    assert info.value.attempts == 1 and isinstance(info.value.last_error, RateLimitedError)
    assert info.value.last_error.retry_after == 60.0
    assert clock.sleeps == []


async def test_no_retries_policy_raises_the_error_itself(mock, clock):
    mock.add("GET", TAGS, status=500, payload={"code": "ErrorUnknown", "message": "x"})
    async with TrainingClient(ENDPOINT, KEY, retry=RetryPolicy.no_retries()) as client:
        with pytest.raises(ServerError):
            await client.get_tags(P)


@pytest.mark.parametrize("exc, cls", [
    (aiohttp.ServerDisconnectedError(), ConnectionFailedError),
    (aiohttp.ClientPayloadError("Response payload is not completed"), ConnectionFailedError),
    (aiohttp.ClientConnectionResetError("Connection reset by peer"), ConnectionFailedError),
    (asyncio.TimeoutError(), RequestTimeoutError),
    (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), RequestTimeoutError),
])
async def test_dropped_connections_and_timeouts_are_retried(training, mock, exc, cls):
    mock.fail("GET", TAGS, exc)
    mock.add("GET", TAGS, payload=[])
    assert await training.get_tags(P) == []
    assert training.stats.transport_errors == 1 and training.stats.retries == 1


async def test_transport_error_type_when_budget_runs_out(mock, clock):
    retry = RetryPolicy(max_attempts=2, sleep=clock.sleep, clock=clock)
    mock.fail("GET", TAGS, aiohttp.ServerDisconnectedError())
    mock.fail("GET", TAGS, aiohttp.ServerDisconnectedError())
    async with TrainingClient(ENDPOINT, KEY, retry=retry) as client:
        with pytest.raises(RetryBudgetExhausted) as info:
            await client.get_tags(P)
    assert isinstance(info.value.last_error, ConnectionFailedError)
    assert info.value.status is None and info.value.operation == "GetTags"


async def test_retried_multipart_resends_the_whole_body(training, mock):
    mock.add("POST", f"{B}/projects/{P}/images", status=503, body="busy")
    mock.fail("POST", f"{B}/projects/{P}/images", aiohttp.ServerDisconnectedError())
    mock.add("POST", f"{B}/projects/{P}/images", payload={"isBatchSuccessful": True, "images": []})
    images = [("a.jpg", b"A" * 5000), ("b.jpg", b"B" * 7000)]
    await training.create_images_from_data(P, images, tag_ids=["t"])
    sent = [c for c in mock.calls if c.parts]
    assert len(sent) == 2 and training.stats.requests == 3  # the dropped attempt is not recorded
    assert sent[0].data is not sent[1].data  # a fresh writer per attempt
    for call in sent:
        assert [(p["filename"], p["body"]) for p in call.parts] == [("a.jpg", b"A" * 5000), ("b.jpg", b"B" * 7000)]
        assert call.query == {"tagIds": "t"}


async def test_retried_json_body_is_resent(training, mock):
    mock.add("POST", f"{B}/projects/{P}/images/tags", status=500, body="")
    mock.add("POST", f"{B}/projects/{P}/images/tags", payload={"created": []})
    await training.create_image_tags(P, [("i", "t")])
    assert [c.json for c in mock.calls] == [{"tags": [{"imageId": "i", "tagId": "t"}]}] * 2


def test_parse_retry_after_header_forms():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = datetime(2030, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after(format_datetime(when, usegmt=True), now=now) == 10.0


def test_parse_retry_after_message_forms():
    assert parse_retry_after_message(THROTTLED["error"]["message"]) == 1.0
    assert parse_retry_after_message("Rate limit is exceeded. Try again in 5 seconds.") is None
    assert parse_retry_after_message("Please retry after 30 seconds.") == 30.0
    assert parse_retry_after_message("retry after 2 second") == 2.0
    assert parse_retry_after_message(None) is None


def test_policy_backoff_is_capped_full_jitter():
    policy = RetryPolicy(base=1.0, cap=8.0, random=lambda: 1.0)
    assert [policy.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert RetryPolicy(random=lambda: 0.0).backoff(3) == 0.0
    assert policy.backoff(10_000) == 8.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
