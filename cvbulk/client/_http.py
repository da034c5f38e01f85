"""The request core: one aiohttp session, the key header, JSON / multipart bodies, pacing, retries, counters."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._errors import (
    ConnectionFailedError,
    CustomVisionError,
    RequestTimeoutError,
    RetryBudgetExhausted,
    ServerError,
    TransportError,
    error_for_status,
    redact,
)
from ._multipart import ImageData, image_multipart
from ._ratelimit import ApiGroup, Pacer
from ._retry import RetryPolicy, parse_retry_after, parse_retry_after_message
from ._stats import ClientStats

__all__ = ["Timeouts", "HttpCore", "seg", "query"]

logger = logging.getLogger("cvbulk.client")

_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Timeouts:
    """Per-attempt timeouts in seconds (None = no limit).

    ``read`` is the longest silence while the answer is awaited: a 64-image create batch can take a while on
    the service, so it is generous. ``total`` bounds one attempt from start to end.
    """

    connect: float | None = 10.0
    read: float | None = 120.0
    total: float | None = None

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect, sock_read=self.read)


class _Secret:
    """A key that shows as *** wherever it is printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def seg(value: str) -> str:
    """One path segment, percent-encoded (published names may hold spaces)."""
    return quote(str(value), safe="")


def query(**params: Any) -> dict[str, str]:
    """Query parameters as the spec wants them: booleans lower-case, arrays as CSV, None left out."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (list, tuple, set, frozenset)):
            if not value:
                continue
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def _error_from_answer(
    status: int, raw: bytes, headers: Mapping[str, str], operation: str, secret: str
) -> CustomVisionError:
    """Build the exception for a non-success answer from its body ({code, message} or {error:{...}})."""
    code: Any = None
    message: Any = None
    try:
        doc = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        inner = doc.get("error") if isinstance(doc.get("error"), dict) else doc
        code = inner.get("code", inner.get("Code", inner.get("statusCode")))
        message = inner.get("message", inner.get("Message"))
    if not message:
        text = raw[:300].decode("utf-8", "replace").strip() if raw else ""
        message = text or f"HTTP {status} with no error body"
    message = redact(" ".join(str(message).split()), secret)
    code_text = redact(str(code), secret) if code is not None else None
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is None and status == 429:
        retry_after = parse_retry_after_message(message)
    return error_for_status(status, message, code=code_text, operation=operation, retry_after=retry_after)


class _Recovered:
    """What a ``recover`` hook found: the result of an attempt whose answer was lost."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything needed to (re)send one operation; the body is rebuilt from it per attempt."""

    operation: str
    method: str
    url: str
    path: str  # for logs: no host, no query
    group: ApiGroup | None  # None: not paced (a download from another host)
    params: Mapping[str, str] | None
    body: bytes | None
    images: Sequence[tuple[str, ImageData]] | None
    send_key: bool
    payload: Callable[[], Any] | None = None  # a streamed body, built afresh per attempt


class HttpCore:
    """Sends one operation's request with pacing and retries; owns (or borrows) the aiohttp session."""

    def __init__(
        self,
        endpoint: str,
        key: str,
        *,
        service_path: str,
        key_header: str,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        stats: ClientStats | None = None,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 64,
    ) -> None:
        if not endpoint:
            raise ValueError("an endpoint is required")
        if not key:
            raise ValueError("a key is required")
        self.endpoint = endpoint.rstrip("/")
        self.base_url = self.endpoint + service_path
        self._origin = URL(self.endpoint).origin()
        self._key = _Secret(key)
        self._key_header = key_header
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer.for_tier("unlimited", max_concurrency=max_connections)
        self.stats = stats or ClientStats()
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections

    # -- session -----------------------------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self.timeouts.to_aiohttp(),
                raise_for_status=False,
            )
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    # -- requests ----------------------------------------------------------------------------------------
    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        group: ApiGroup = ApiGroup.TRAINING,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        images: Sequence[tuple[str, ImageData]] | None = None,
        payload: Callable[[], Any] | None = None,
        recover: Callable[[], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run one operation; returns the parsed JSON answer (None for an empty one).

        Any 2xx is a success (the batch operations answer 207 when some items failed; the body says which).
        ``recover`` serves operations that are not idempotent (CreateProject): before a retry it looks
        for what a failed attempt may have done anyway, and its answer (when not None) is the result.
        """
        body: bytes | None = None
        if json_body is not None:
            # encoded once: bytes are immutable, so every attempt can resend them as they are
            body = json.dumps(json_body, separators=(",", ":")).encode()
        request = _Request(operation, method, self.base_url + path, path, group, params, body, images, True, payload)
        raw = await self._with_retries(request, recover)
        if isinstance(raw, _Recovered):
            return raw.value
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise CustomVisionError(
                "the answer is not JSON: " + redact(raw[:120].decode("utf-8", "replace"), self._key.reveal()),
                operation=operation,
            ) from None

    async def download(self, url: str) -> bytes:
        """GET raw bytes; the key goes only to the endpoint's own origin (never to blob storage)."""
        target = URL(url)
        if not target.is_absolute():
            target = URL(self.endpoint).join(target)
        same_origin = target.origin() == self._origin
        group = ApiGroup.TRAINING if same_origin else None  # other hosts do not count against our rate
        request = _Request("Download", "GET", str(target), target.path, group, None, None, None, same_origin)
        return await self._with_retries(request)

    async def _with_retries(self, request: _Request, recover: Callable[[], Awaitable[Any]] | None = None) -> Any:
        policy = self.retry
        started = policy.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                if request.group is None:
                    return await self._send(request)
                async with self.pacer.slot(request.group):
                    return await self._send(request)
            except CustomVisionError as err:
                if not err.retryable or policy.max_attempts == 1:
                    raise
                if attempt >= policy.max_attempts:
                    raise RetryBudgetExhausted(err, attempt) from None
                delay = policy.delay_for(err, attempt)
                if policy.clock() - started + delay > policy.max_elapsed:
                    raise RetryBudgetExhausted(err, attempt) from None
                logger.debug("%s %s: retry %d in %.2f s after %s", request.method, request.path, attempt, delay,
                             type(err).__name__)
                self.stats.retries += 1
                await policy.sleep(delay)
                if recover is not None and isinstance(err, (TransportError, ServerError)):
                    found = await recover()  # the dropped attempt may have done the work
                    if found is not None:
                        return _Recovered(found)

    async def _send(self, request: _Request) -> bytes:
        """One attempt: build the body, send, read, count, and turn a failure into an exception."""
        operation, group = request.operation, request.group
        headers = {self._key_header: self._key.reveal()} if request.send_key else {}
        headers["Accept"] = "*/*" if operation == "Download" else "application/json"
        data: Any = None
        if request.images is not None:
            # rebuilt per attempt: a multipart writer is consumed by sending it
            data = image_multipart(request.images)
            sent = data.size or 0
        elif request.payload is not None:
            data = request.payload()
            sent = data.size or 0
        elif request.body is not None:
            data = request.body
            headers.update(_JSON_HEADERS)
            sent = len(request.body)
        else:
            sent = 0
        stats = self.stats
        stats.requests += 1
        stats.bytes_sent += sent
        start = time.perf_counter()
        try:
            async with self.session().request(
                request.method, request.url, params=request.params, data=data, headers=headers
            ) as resp:
                raw = await resp.read()
                status = resp.status
                answer_headers = resp.headers
        except (asyncio.TimeoutError, TimeoutError) as exc:
            self._transport_failure(group)
            raise RequestTimeoutError(
                f"no answer within the timeout ({type(exc).__name__})", operation=operation
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            self._transport_failure(group)
            detail = redact(str(exc), self._key.reveal()) or type(exc).__name__
            raise ConnectionFailedError(f"{type(exc).__name__}: {detail}", operation=operation) from None
        except aiohttp.ClientError as exc:
            detail = redact(str(exc), self._key.reveal()) or type(exc).__name__
            raise CustomVisionError(f"{type(exc).__name__}: {detail}", operation=operation) from None
        elapsed = time.perf_counter() - start
        stats.record_latency(elapsed)
        stats.bytes_received += len(raw)
        logger.debug("%s %s -> %d in %.1f ms", request.method, request.path, status, elapsed * 1000.0)
        if 200 <= status < 300:
            if group is not None:
                self.pacer.on_success(group)
            return raw
        err = _error_from_answer(status, raw, answer_headers, operation, self._key.reveal())
        if status == 429:
            stats.throttled += 1
            if group is not None:
                self.pacer.on_throttled(group, err.retry_after)
        elif status >= 500:
            stats.server_errors += 1
            if group is not None:
                self.pacer.on_server_error(group)
        raise err

    def _transport_failure(self, group: ApiGroup | None) -> None:
        self.stats.transport_errors += 1
        if group is not None:
            self.pacer.on_server_error(group)

