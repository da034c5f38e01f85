"""The request core: one aiohttp session, the key header, JSON / multipart bodies, pacing, retries, counters."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from yarl import URL

from .._http1 import proxied
from ._errors import (
    BodyReadError,
    ConnectionFailedError,
    CustomVisionError,
    EndpointUnreachableError,
    RateLimitedError,
    RequestTimeoutError,
    RetryBudgetExhausted,
    ServerError,
    TransportError,
    error_for_status,
    redact,
)
from ._lean import LeanConnectError, LeanError, LeanPool, LeanTimeout, request_bytes
from ._multipart import ImageData, image_multipart
from ._ratelimit import ApiGroup, Pacer
from ._retry import OnRetry, RetryEvent, RetryPolicy, parse_retry_after, parse_retry_after_message, retry_cause
from ._stats import ClientStats

__all__ = ["Timeouts", "HttpCore", "seg", "query"]

logger = logging.getLogger("cvbulk.client")

_JSON_HEADERS = {"Content-Type": "application/json"}
# json.dumps with separators makes a new encoder per call; one for the process gives the same bytes
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

#: JSON requests of a client that owns its connections go through ``_lean`` (a plain HTTP/1.1 exchange on
#: kept-alive connections) instead of aiohttp, unless the endpoint is reached through a proxy. Tests that mock
#: aiohttp itself turn this off.
LEAN_TRANSPORT = True


# Requests with a body up to this size get the short first-answer deadline before the first contact; a
# bigger first request (a 64-image batch) may keep the service busy longer than that before it answers.
_SMALL_BODY = 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Per-attempt timeouts in seconds (None = no limit).

    ``read`` is the longest silence while the answer is awaited: a 64-image create batch can take a while on
    the service, so it is generous. ``total`` bounds one attempt from start to end.

    Until the endpoint has answered one HTTP request (the first contact), a wrong endpoint should be said in
    seconds: ``first_answer`` caps the connect and first-byte wait of each attempt with a small body, and
    after ``first_contact`` seconds without any answer the client raises ``EndpointUnreachableError``
    instead of retrying on (a refused port, an unknown host or a failed TLS handshake raise it at once).
    After the first contact the normal timeouts and retries carry a run through an outage.
    """

    connect: float | None = 10.0
    read: float | None = 120.0
    total: float | None = None
    first_answer: float | None = 5.0
    first_contact: float | None = 10.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        """The aiohttp timeout of an attempt once the endpoint has answered."""
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect, sock_read=self.read)

    def before_contact(self, small_body: bool) -> aiohttp.ClientTimeout:
        """The aiohttp timeout of an attempt before the endpoint's first answer."""
        cap = self.first_answer
        connect = _least(self.connect, cap)
        read = _least(self.read, cap) if small_body else self.read
        return aiohttp.ClientTimeout(total=self.total, connect=connect, sock_connect=connect, sock_read=read)


def _least(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


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
        nested = doc.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else doc
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
        on_retry: OnRetry | None = None,
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
        self.on_retry = on_retry
        # Until the endpoint answers one request, what cannot heal (DNS, refused, TLS) is raised at once.
        self.contacted = False
        self._first_try: float | None = None  # clock time of the first attempt, for Timeouts.first_contact
        # The lean transport (see LEAN_TRANSPORT): made at the first request that uses it.
        self._lean_ok = session is None and LEAN_TRANSPORT and not proxied(self.base_url)
        self._lean: LeanPool | None = None
        base = urlsplit(self.base_url)
        self._lean_path = base.path
        self._lean_head = _Secret(f"{key_header}: {key}\r\nAccept: application/json\r\nUser-Agent: cvbulk\r\n")

    # -- session -----------------------------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session (created on first use, and again after the owned one was closed)."""
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self.timeouts.to_aiohttp(),
                raise_for_status=False,
            )
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        """Close the session if this core created it (and the lean transport's connections)."""
        if self._lean is not None:
            self._lean.close()
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
            body = _COMPACT.encode(json_body).encode()
        request = _Request(operation, method, self.base_url + path, path, group, params, body, images, True, payload)
        raw = await self._with_retries(request, recover)
        if isinstance(raw, _Recovered):
            return raw.value
        if not raw:
            return None
        try:
            # an object or array starts with an ASCII byte: UTF-8 (json.loads would detect it so, more slowly)
            return json.loads(raw.decode("utf-8", "surrogatepass") if raw[:1] in (b"{", b"[") else raw)
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
        """Send until a success, or until the error or throttle budget of the policy runs out."""
        policy = self.retry
        attempt = 0
        failures = 0  # attempts that failed with an error (429s are not errors)
        errors_since: float | None = None  # clock time of the first error, for max_elapsed
        throttle_waited = 0.0
        throttles = 0
        while True:
            attempt += 1
            try:
                if request.group is None:
                    return await self._send(request)
                # the pacer's slot (``Pacer.slot``) taken and given back here: one request's hot path
                await self.pacer.enter(request.group)
                try:
                    return await self._send(request)
                finally:
                    self.pacer.leave(request.group)
            except CustomVisionError as err:
                if not err.retryable or policy.max_attempts == 1:
                    raise
                if isinstance(err, RateLimitedError):
                    throttles += 1
                    delay = policy.delay_for(err, throttles)
                    if throttle_waited + delay > policy.max_throttle_wait:
                        raise RetryBudgetExhausted(err, attempt, throttled_for=throttle_waited) from None
                    throttle_waited += delay
                else:
                    failures += 1
                    now = policy.clock()
                    if errors_since is None:
                        errors_since = now
                    if failures >= policy.max_attempts:
                        raise RetryBudgetExhausted(err, attempt) from None
                    delay = policy.delay_for(err, failures)
                    if now - errors_since + delay > policy.max_elapsed:
                        raise RetryBudgetExhausted(err, attempt) from None
                    self._check_first_contact(request, err, delay)
                cause = retry_cause(err)
                logger.debug("%s %s: retry %d in %.2f s after %s", request.method, request.path, attempt, delay, cause)
                self.stats.retries += 1
                if self.on_retry is not None:
                    self.on_retry(RetryEvent(request.operation, attempt, delay, cause, err.status))
                await policy.sleep(delay)
                if recover is not None and isinstance(err, (TransportError, ServerError)):
                    found = await recover()  # the dropped attempt may have done the work
                    if found is not None:
                        return _Recovered(found)

    def _check_first_contact(self, request: _Request, err: CustomVisionError, delay: float) -> None:
        """Before any answer of the endpoint, give up once Timeouts.first_contact has passed."""
        limit = self.timeouts.first_contact
        if self.contacted or not request.send_key or limit is None or self._first_try is None:
            return
        if not isinstance(err, TransportError):
            return
        silent_for = self.retry.clock() - self._first_try
        if silent_for + delay > limit:
            url = URL(request.url)
            where = f"{url.host}:{url.port}" if url.port else (url.host or "the endpoint")
            if isinstance(err, RequestTimeoutError):
                reason = f"{where} accepts connections but sent no answer in {silent_for:.0f} s"
            else:
                reason = f"no answer from {where} in {silent_for:.0f} s (last: {err.message})"
            raise EndpointUnreachableError(reason, operation=request.operation) from None

    async def _send(self, request: _Request) -> bytes:
        """One attempt: build the body, send, read, count, and turn a failure into an exception."""
        operation, group = request.operation, request.group
        lean = self._lean_ok and request.images is None and request.payload is None and operation != "Download"
        data: Any = None
        if lean:
            sent = len(request.body) if request.body is not None else 0
        elif request.images is not None:
            # rebuilt per attempt: a multipart writer is consumed by sending it
            data = image_multipart(request.images)
            sent = data.size or 0
        elif request.payload is not None:
            data = request.payload()
            sent = data.size or 0
        elif request.body is not None:
            data = request.body
            sent = len(request.body)
        else:
            sent = 0
        stats = self.stats
        stats.requests += 1
        stats.bytes_sent += sent
        first = not self.contacted and request.send_key
        if first and self._first_try is None:
            self._first_try = self.retry.clock()
        start = time.perf_counter()
        if lean:
            status, raw, answer_headers = await self._lean_attempt(request, first, sent)
        else:
            status, raw, answer_headers = await self._aiohttp_attempt(request, data, first, sent)
        elapsed = time.perf_counter() - start
        stats.record_latency(elapsed)
        stats.bytes_received += len(raw)
        if logger.isEnabledFor(logging.DEBUG):
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

    async def _aiohttp_attempt(
        self, request: _Request, data: Any, first: bool, sent: int
    ) -> tuple[int, bytes, Mapping[str, str]]:
        operation, group = request.operation, request.group
        headers = {self._key_header: self._key.reveal()} if request.send_key else {}
        headers["Accept"] = "*/*" if operation == "Download" else "application/json"
        if request.images is None and request.payload is None and request.body is not None:
            headers.update(_JSON_HEADERS)
        options: dict[str, Any] = {}
        if first:
            options["timeout"] = self.timeouts.before_contact(sent <= _SMALL_BODY)
        try:
            async with self.session().request(
                request.method, request.url, params=request.params, data=data, headers=headers, **options
            ) as resp:
                if request.send_key:
                    self.contacted = True  # an HTTP answer: the endpoint exists and speaks HTTP
                raw = await resp.read()
                return resp.status, raw, resp.headers
        except aiohttp.ClientConnectorError as exc:
            # no connection at all: DNS, refused, unreachable, TLS handshake
            self._transport_failure(group)
            reason = _connect_failure(exc, URL(request.url))
            if not self.contacted and request.send_key:
                raise EndpointUnreachableError(reason, operation=operation) from None
            raise ConnectionFailedError(reason, operation=operation) from None
        except (asyncio.TimeoutError, TimeoutError) as exc:
            self._transport_failure(group)
            raise RequestTimeoutError(
                f"no answer within the timeout ({type(exc).__name__})", operation=operation
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            failed = getattr(data, "failed", None)
            if failed is not None:  # the image's own source failed, not the connection: said as itself
                raise BodyReadError(failed, operation=operation) from None
            self._transport_failure(group)
            detail = redact(str(exc), self._key.reveal()) or type(exc).__name__
            raise ConnectionFailedError(f"{type(exc).__name__}: {detail}", operation=operation) from None
        except aiohttp.ClientError as exc:
            detail = redact(str(exc), self._key.reveal()) or type(exc).__name__
            raise CustomVisionError(f"{type(exc).__name__}: {detail}", operation=operation) from None

    async def _lean_attempt(self, request: _Request, first: bool, sent: int) -> tuple[int, bytes, Mapping[str, str]]:
        """The attempt of a JSON request on the lean transport, its failures mapped as aiohttp's are."""
        operation, group = request.operation, request.group
        pool = self._lean
        if pool is None:
            pool = self._lean = LeanPool(self.endpoint, limit=self._max_connections)
        timeouts = self.timeouts
        connect, read = timeouts.connect, timeouts.read
        if first:
            connect = _least(connect, timeouts.first_answer)
            if sent <= _SMALL_BODY:
                read = _least(read, timeouts.first_answer)
        target = self._lean_path + request.path
        if not target.isascii() or " " in target:  # paths are quoted by seg(); quote whatever was not, as yarl does
            target = quote(target, safe="/%?&=,:;@!$'()*+~-._")
        if request.params:
            target += ("&" if "?" in target else "?") + urlencode(request.params, quote_via=quote, safe=",")
        head = self._lean_head.reveal()
        if request.body is not None:
            head += "Content-Type: application/json\r\n"
        data = request_bytes(request.method, target, pool.host_header, head, request.body)
        # Written again at once on a fresh connection when a kept-alive one was closed under it: only what is
        # safe to repeat (RFC 9112), and a prediction that stores nothing.
        retry_stale = request.method in _IDEMPOTENT or group is ApiGroup.PREDICTION_NOSTORE
        try:
            status, headers, raw = await pool.request(
                request.method, data, connect=connect, read=read, total=timeouts.total, retry_stale=retry_stale
            )
        except LeanConnectError as exc:
            self._transport_failure(group)
            reason = _connect_reason(exc.cause, pool.host, pool.port)
            if not self.contacted:
                raise EndpointUnreachableError(reason, operation=operation) from None
            raise ConnectionFailedError(reason, operation=operation) from None
        except LeanTimeout as exc:
            self._transport_failure(group)
            raise RequestTimeoutError(f"no answer within the timeout ({exc})", operation=operation) from None
        except LeanError as exc:
            self._transport_failure(group)
            detail = redact(str(exc), self._key.reveal())
            raise ConnectionFailedError(detail, operation=operation) from None
        self.contacted = True  # an HTTP answer: the endpoint exists and speaks HTTP
        return status, raw, headers

    def _transport_failure(self, group: ApiGroup | None) -> None:
        """Count a request without an answer, and tell the pacer (it backs off as for a 5xx)."""
        self.stats.transport_errors += 1
        if group is not None:
            self.pacer.on_server_error(group)


def _connect_failure(exc: aiohttp.ClientConnectorError, url: URL) -> str:
    """One line on why aiohttp made no connection, naming the host (never a key: it is not in the URL)."""
    cause = exc.os_error
    if type(exc).__name__ == "ClientConnectorDNSError" and not isinstance(cause, socket.gaierror):  # aiohttp >= 3.10
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else "no such host"
        return f"cannot resolve the host {url.host or 'the endpoint'} ({detail})"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        problem = exc.certificate_error
        detail = getattr(problem, "verify_message", None) or type(problem).__name__
        return f"the TLS certificate of {_where(url.host, url.port)} is not trusted ({detail})"
    if isinstance(exc, aiohttp.ClientSSLError) and not isinstance(cause, ssl.SSLError):
        reason = getattr(cause, "reason", None) or type(cause).__name__
        return f"TLS handshake with {_where(url.host, url.port)} failed ({reason})"
    return _connect_reason(cause, url.host, url.port, fallback=type(exc).__name__)


def _where(host: str | None, port: int | None) -> str:
    host = host or "the endpoint"
    return f"{host}:{port}" if port else host


def _connect_reason(cause: BaseException | None, host: str | None, port: int | None, *, fallback: str = "") -> str:
    """One line for the OSError of a failed connection: DNS, an untrusted certificate, TLS, refused, other."""
    where = _where(host, port)
    if isinstance(cause, socket.gaierror):
        detail = cause.strerror or "no such host"
        return f"cannot resolve the host {host or 'the endpoint'} ({detail})"
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or type(cause).__name__
        return f"the TLS certificate of {where} is not trusted ({detail})"
    if isinstance(cause, ssl.SSLError):
        reason = getattr(cause, "reason", None) or type(cause).__name__
        hint = "; is it an http:// endpoint?" if reason == "WRONG_VERSION_NUMBER" else ""
        return f"TLS handshake with {where} failed ({reason}{hint})"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection to {where} refused (nothing listens there)"
    detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else (fallback or type(cause).__name__)
    return f"cannot connect to {where} ({detail})"
