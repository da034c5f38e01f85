"""Error bodies become the right exception with code and message; the key never shows anywhere."""

from __future__ import annotations

import logging
import pickle

import aiohttp
import pytest

from cvbulk.client import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    CustomVisionError,
    NotFoundError,
    Pacer,
    PredictionClient,
    RateLimitedError,
    RetryBudgetExhausted,
    RetryPolicy,
    ServerError,
    TrainingClient,
    error_for_status,
)

from ._support import ENDPOINT, KEY, TRAINING_BASE as B

P = "p1"
PROJECT = f"{B}/projects/{P}"


@pytest.mark.parametrize("status, body, cls, code, message", [
    (404, {"code": "NotFoundProject", "message": "Unable to find project"}, NotFoundError, "NotFoundProject",
     "Unable to find project"),
    (400, {"code": "BadRequestImageBatch", "message": "Too many images"}, BadRequestError,
     "BadRequestImageBatch", "Too many images"),
    (401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API "
                                               "endpoint."}}, AuthenticationError, "401",
     "Access denied due to invalid subscription key or wrong API endpoint."),
    (403, {"code": "Forbidden", "message": "no"}, AuthenticationError, "Forbidden", "no"),
    (413, {"code": "BadRequestImageSizeBytes", "message": "too big"}, BadRequestError,
     "BadRequestImageSizeBytes", "too big"),
    (415, {"code": "UnsupportedMediaType", "message": "x"}, BadRequestError, "UnsupportedMediaType", "x"),
    (401, {"statusCode": 401, "message": "Access denied"}, AuthenticationError, "401", "Access denied"),
])
async def test_error_bodies_map_to_exception_classes(training, mock, status, body, cls, code, message):
    mock.add("GET", PROJECT, status=status, payload=body)
    with pytest.raises(cls) as info:
        await training.get_project(P)
    err = info.value
    assert (err.status, err.code, err.message, err.operation) == (status, code, message, "GetProject")
    assert not err.retryable
    assert f"HTTP {status}" in str(err) and message in str(err) and "GetProject" in str(err)


async def test_rate_limited_error_carries_the_wait(mock, clock):
    mock.add("GET", PROJECT, status=429, payload={"error": {"code": "429", "message":
             "Requests ... exceeded rate limit of your current CustomVision.Training F0 pricing tier. "
             "Please retry after 1 second."}})
    async with TrainingClient(ENDPOINT, KEY, retry=RetryPolicy.no_retries()) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_project(P)
    assert info.value.retry_after == 1.0 and info.value.code == "429" and info.value.retryable


async def test_server_error_with_retry_after_header(mock):
    mock.add("GET", PROJECT, status=503, body="Service Unavailable", headers={"Retry-After": "7"})
    async with TrainingClient(ENDPOINT, KEY, retry=RetryPolicy.no_retries()) as client:
        with pytest.raises(ServerError) as info:
            await client.get_project(P)
    assert info.value.retry_after == 7.0 and info.value.message == "Service Unavailable"
    assert info.value.code is None


async def test_non_json_and_empty_error_bodies(training, mock):
    mock.add("GET", PROJECT, status=404, body="<html><body>Not   Found</body></html>")
    with pytest.raises(NotFoundError) as info:
        await training.get_project(P)
    assert info.value.message == "<html><body>Not Found</body></html>" and info.value.code is None
    mock.add("GET", PROJECT, status=400, body="")
    with pytest.raises(BadRequestError) as info:
        await training.get_project(P)
    assert info.value.message == "HTTP 400 with no error body"


def test_error_for_status_classes():
    assert type(error_for_status(401, "m")) is AuthenticationError
    assert type(error_for_status(403, "m")) is AuthenticationError
    assert type(error_for_status(404, "m")) is NotFoundError
    assert type(error_for_status(409, "m")) is BadRequestError
    assert type(error_for_status(429, "m", retry_after=3)) is RateLimitedError
    assert type(error_for_status(502, "m")) is ServerError
    assert type(error_for_status(302, "m")) is CustomVisionError


def test_errors_survive_pickling():
    for err in (error_for_status(429, "m", code="429", operation="Op", retry_after=2.0),
                error_for_status(503, "m", retry_after=4.0), error_for_status(404, "nf", code="NotFound")):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err) and copy.retry_after == err.retry_after
    budget = RetryBudgetExhausted(error_for_status(500, "x"), 3)
    copy = pickle.loads(pickle.dumps(budget))
    assert copy.attempts == 3 and isinstance(copy.last_error, ServerError)


async def test_key_never_appears_in_errors_reprs_or_logs(mock, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="cvbulk.client")
    pacer = Pacer.for_tier("unlimited", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(max_attempts=2, sleep=clock.sleep, clock=clock)
    # a (misbehaving) service that echoes the key back in its error
    mock.add("GET", PROJECT, status=401, payload={"code": KEY, "message": f"key {KEY} is not valid"})
    mock.add("GET", f"{B}/projects", status=500, payload={"code": "ErrorUnknown", "message": f"echo {KEY}"},
             repeat=True)
    errors: list[BaseException] = []
    async with TrainingClient(ENDPOINT, KEY, retry=retry, pacer=pacer) as training:
        with pytest.raises(AuthenticationError) as info:
            await training.get_project(P)
        errors.append(info.value)
        with pytest.raises(RetryBudgetExhausted) as info:
            await training.get_projects()
        errors.append(info.value)
        errors.append(info.value.last_error)
        texts = [repr(training), str(training), repr(training.stats), repr(training.pacer), repr(training.retry),
                 repr(vars(training)), repr(vars(training._http))]
    async with PredictionClient(ENDPOINT, KEY) as prediction:
        texts += [repr(prediction), str(prediction), repr(vars(prediction._http))]
    for err in errors:
        texts += [str(err), repr(err), str(err.args), err.message, str(err.code)]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "debug logging should have said something"
    for text in texts:
        assert KEY not in text
    assert "***" in errors[0].message and errors[0].code == "***"


async def test_connection_error_text_is_redacted(training, mock):
    class Leaky(aiohttp.ClientConnectionError):
        def __str__(self) -> str:
            return f"cannot connect with {KEY}"

    mock.fail("GET", PROJECT, Leaky())
    mock.fail("GET", PROJECT, Leaky())
    training._http.retry = RetryPolicy(max_attempts=2, sleep=training.retry.sleep, clock=training.retry.clock)
    with pytest.raises(RetryBudgetExhausted) as info:
        await training.get_project(P)
    assert isinstance(info.value.last_error, ConnectionFailedError)
    assert KEY not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None and info.value.last_error.__cause__ is None


def test_clients_cannot_be_pickled_with_their_key():
    client = TrainingClient(ENDPOINT, KEY)
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_clients_need_an_endpoint_and_a_key():
    with pytest.raises(ValueError):
        TrainingClient("", KEY)
    with pytest.raises(ValueError):
        PredictionClient(ENDPOINT, "")


async def test_a_success_answer_that_is_not_json(training, mock):
    mock.add("GET", PROJECT, body="<html>proxy login</html>")
    with pytest.raises(CustomVisionError) as info:
        await training.get_project(P)
    assert "not JSON" in str(info.value) and not info.value.retryable
