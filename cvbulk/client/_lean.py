"""A lean HTTP/1.1 transport for the client's JSON requests: kept-alive connections, nothing else.

At 20 predictions/s by URL the request is most of what the client spends per image: aiohttp's client costs
~0.4 ms of CPU per request (URL and header objects, cookie jar, tracing, several futures and timers). A JSON
request needs far less: this writes the request line and a few headers and reads back the status, the headers
and a ``Content-Length`` (or chunked, or until-close) body: ~0.1 ms. ``HttpCore`` keeps everything else:
pacing, retries, Retry-After, error mapping, counters. Multipart uploads, streamed bodies, downloads from other
hosts, an injected ``aiohttp`` session and a proxied endpoint still go through aiohttp.

TLS is verified as aiohttp does it (``ssl.create_default_context()``: the system's trust store, or
``SSL_CERT_FILE``). Timeouts are aiohttp's: ``connect``, ``read`` (the longest silence while the answer is
awaited) and ``total`` per attempt, kept by one timer per request.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import anyio

from .._http1 import chunked_body, connect

__all__ = ["LeanPool", "LeanConnectError", "LeanTimeout", "LeanDisconnected", "Headers"]

_MAX_HEAD = 64 * 1024  # status line and headers: the service sends well under 2 KB
#: An idle connection older than this is closed, not reused (aiohttp's keepalive_timeout): servers close
#: idle connections after a while, and a request written just as they do is lost.
KEEPALIVE = 15.0
#: Methods a request may be written again for on a fresh connection when a kept-alive one turns out closed
#: before any answer (RFC 9112 9.3.1; aiohttp does the same).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


class LeanError(Exception):
    """A request that got no whole answer (never holds the URL's query or a header)."""


class LeanConnectError(LeanError):
    """No connection was made; ``cause`` is the OSError (refused, DNS, TLS)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class LeanTimeout(LeanError):
    """No (whole) answer in time; ``args[0]`` names the timeout as aiohttp does."""


class LeanDisconnected(LeanError):
    """The connection closed (or the answer was not HTTP) before the whole answer arrived."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Headers(Mapping[str, str]):
    """An answer's headers; names in any case. Parsed from the raw block at the first look (an answer's
    headers are mostly never read: a success needs only its length)."""

    __slots__ = ("_block", "_map")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._block: bytes | None = None
        self._map: dict[str, str] | None = {k.lower(): v for k, v in items.items()} if items is not None else {}

    @classmethod
    def lazy(cls, block: bytes) -> Headers:
        """The headers of a raw block (status line first, CRLF between lines)."""
        headers = cls()
        headers._block, headers._map = block, None
        return headers

    def _fields(self) -> dict[str, str]:
        if self._map is None:
            found: dict[str, str] = {}
            for line in (self._block or b"").decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                found[name] = f"{found[name]}, {value}" if name in found else value
            self._map = found
        return self._map

    def __getitem__(self, name: str) -> str:
        return self._fields()[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())


_NO_HEADERS = Headers()


def _field(low: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` in a lower-cased header block (the first, stripped), or None."""
    at = low.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    stop = low.find(b"\r\n", start)
    return (low[start:] if stop < 0 else low[start:stop]).strip()


class _Connection(asyncio.Protocol):
    """One kept-alive connection, one request at a time."""

    __slots__ = (
        "_body_at",
        "_buf",
        "_close_after",
        "_coded",
        "_deadline",
        "_headers",
        "_last",
        "_length",
        "_loop",
        "_no_body",
        "_read",
        "_status",
        "_waiter",
        "closed",
        "got_bytes",
        "idle_since",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.got_bytes = False  # any byte of the current answer: a failure after it is no stale connection
        self.idle_since = 0.0
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, Headers, bytes]] | None = None
        self._status = 0
        self._body_at = -1  # where the body starts in _buf (-1: headers not complete yet)
        self._length = -1  # Content-Length; -1 chunked; -2 until the connection closes
        self._close_after = False
        self._no_body = False
        self._coded = False  # a gzip or deflate body (we ask for none; a server may still send one)
        self._headers = Headers()
        self._last = 0.0
        self._read: float | None = None
        self._deadline: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and self._length == -2 and self._body_at >= 0:
            self._finish(bytes(self._buf[self._body_at :]))  # a body that ends with the connection
            return
        kind = type(exc).__name__ if exc is not None else "ServerDisconnectedError"
        self._fail(LeanDisconnected(kind, "the server closed the connection" if exc is None else str(exc) or kind))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        self.got_bytes = True
        self._buf += data
        if self._read is not None:
            self._last = self._loop.time()  # type: ignore[union-attr]
        try:
            self._parse()
        except (ValueError, IndexError, zlib.error) as exc:
            self._fail(LeanDisconnected("ClientResponseError", f"not an HTTP answer ({exc})"))
            self.close()

    # -- one request --------------------------------------------------------------------------------------
    def request(
        self, loop: asyncio.AbstractEventLoop, data: bytes, *, head: bool, read: float | None, total: float | None
    ) -> asyncio.Future[tuple[int, Headers, bytes]]:
        """Write one request; the future of its answer. Its timeouts are kept by the pool (:meth:`check`)."""
        assert self.transport is not None
        self._loop = loop
        self._waiter = waiter = loop.create_future()
        self._buf.clear()
        self._body_at, self.got_bytes, self._no_body = -1, False, head
        self._headers = _NO_HEADERS  # the answer's, once its head is read
        now = loop.time()
        self._read, self._last = read, now
        self._deadline = now + total if total is not None else None
        self.transport.write(data)
        return waiter

    def due(self) -> float | None:
        """When the request in progress may time out (None: it cannot, or none is in progress)."""
        if self._waiter is None:
            return None
        when = self._last + self._read if self._read is not None else None
        if self._deadline is not None:
            when = self._deadline if when is None else min(when, self._deadline)
        return when

    def check(self, now: float) -> float | None:
        """Fail the request in progress if it timed out by ``now``; else when to look again (see :meth:`due`)."""
        if self._waiter is None:
            return None
        if self._deadline is not None and now >= self._deadline:
            self._fail(LeanTimeout("ServerTimeoutError"))
            return None
        if self._read is not None and now - self._last >= self._read - 1e-3:
            self._fail(LeanTimeout("SocketTimeoutError"))
            return None
        return self.due()  # data came meanwhile: wait from the last of it

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self, body: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        headers = self._headers
        if self._coded:
            body = zlib.decompress(body, 47)  # we ask for no encoding; a server may still send one
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, headers, body))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not (self.closed or self._close_after)

    # -- parsing ------------------------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        if self._body_at < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("headers too long")
                return
            block = bytes(buf[:end])
            line_end = block.find(b"\r\n")
            version, status = (block if line_end < 0 else block[:line_end]).split(b" ", 2)[:2]
            if not version.startswith(b"HTTP/1."):
                raise ValueError("not HTTP/1.x")
            code = int(status)
            if 100 <= code < 200:  # an interim answer (100 Continue): the real one follows
                del buf[: end + 4]
                self._parse()
                return
            # Only the few headers the exchange needs are looked up here; the others are parsed when asked for.
            low = block.lower()
            self._headers = Headers.lazy(block)
            self._status = code
            # a header that is not there at all needs no look-up (the usual answer has no Connection,
            # Content-Encoding or Transfer-Encoding)
            connection = _field(low, b"connection") if b"\r\nconnection:" in low else None
            self._close_after = connection == b"close" or (version == b"HTTP/1.0" and connection != b"keep-alive")
            length = _field(low, b"content-length")
            self._coded = b"\r\ncontent-encoding:" in low and _field(low, b"content-encoding") in (
                b"gzip", b"deflate", b"x-gzip"
            )
            if self._no_body or code in (204, 304):
                self._length = 0
            elif b"\r\ntransfer-encoding:" in low and b"chunked" in (_field(low, b"transfer-encoding") or b""):
                self._length = -1
            elif length is not None:
                self._length = int(length)
            else:
                self._length, self._close_after = -2, True  # the body ends with the connection
            self._body_at = end + 4
        if self._length >= 0:
            stop = self._body_at + self._length
            if len(buf) >= stop:
                self._finish(bytes(buf[self._body_at : stop]))
        elif self._length == -1:
            body = self._chunked()
            if body is not None:
                self._finish(body)

    def _chunked(self) -> bytes | None:
        found = chunked_body(self._buf, self._body_at)
        return None if found is None else found[0]


class LeanPool:
    """Connections to one origin (``scheme://host:port``), at most ``limit`` at once, kept alive and reused.

    The requests' timeouts are kept by one timer for the pool, due when the first of them may run out, not by
    a timer per request: arming and cancelling one per request was a good part of a request's cost (every
    timer goes through the event loop's heap)."""

    def __init__(self, origin: str, *, limit: int = 64) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) origin")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        default = 443 if self.https else 80
        # the Host header as aiohttp writes it: no port when it is the scheme's own
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default else f"{host}:{self.port}"
        self._limit = limit
        self._slots: anyio.Semaphore | None = None
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy: set[_Connection] = set()  # connections whose request the watchdog keeps the time of
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_at = 0.0

    async def request(
        self,
        method: str,
        data: bytes,
        *,
        connect: float | None,
        read: float | None,
        total: float | None,
        retry_stale: bool,
    ) -> tuple[int, Headers, bytes]:
        """``(status, headers, body)`` of one request (``data``: its bytes, head and body); raises a LeanError."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that made them (a new ``anyio.run``)
            self._idle.clear()
            self._busy.clear()
            self._watchdog = None
            self._slots = None
            self._loop = loop
        if self._slots is None:
            self._slots = anyio.Semaphore(self._limit)
        slots = self._slots
        try:
            slots.acquire_nowait()  # no checkpoint when a slot is free (the usual case)
        except anyio.WouldBlock:
            await slots.acquire()
        try:
            head = method == "HEAD"
            conn = self._idle_connection(loop.time())
            if conn is not None:
                try:
                    return await self._exchange(loop, conn, data, head, read, total)
                except LeanDisconnected:
                    if conn.got_bytes or not retry_stale:
                        raise
                    # a kept-alive connection the server had closed meanwhile: once more on a new one
            conn = await self._connect(connect)
            return await self._exchange(loop, conn, data, head, read, total)
        finally:
            slots.release()

    def _idle_connection(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if now - conn.idle_since > KEEPALIVE:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self, timeout: float | None) -> _Connection:
        try:
            conn = await connect(_Connection, self.host, self.port, https=self.https, timeout=timeout)
        except TimeoutError:
            raise LeanTimeout("ConnectionTimeoutError") from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise LeanConnectError(exc) from None
        return conn

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: _Connection,
        data: bytes,
        head: bool,
        read: float | None,
        total: float | None,
    ) -> tuple[int, Headers, bytes]:
        ok = False
        try:
            waiter = conn.request(loop, data, head=head, read=read, total=total)
            self._watch(loop, conn)
            answer = await waiter
            ok = True
        finally:
            if not ok:  # failed, timed out or cancelled mid-answer: the connection's state is unknown
                conn.close()
        if conn.reusable:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    def _watch(self, loop: asyncio.AbstractEventLoop, conn: _Connection) -> None:
        """Keep the time of ``conn``'s request: the watchdog is armed (again) only when it is due later."""
        due = conn.due()
        if due is None:
            return
        self._busy.add(conn)
        if self._watchdog is None or due < self._watchdog_at:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog_at = due
            self._watchdog = loop.call_at(due, self._sweep)

    def _sweep(self) -> None:
        """The watchdog: fail the requests that timed out, then wait for the next that may."""
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        later: float | None = None
        for conn in list(self._busy):
            due = conn.check(now)
            if due is None:
                self._busy.discard(conn)  # answered, failed or timed out now
            elif later is None or due < later:
                later = due
        if later is not None:
            self._watchdog_at = later
            self._watchdog = loop.call_at(later, self._sweep)

    def close(self) -> None:
        """Close every idle connection (ones in use close when their request ends)."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def request_bytes(
    method: str, target: str, host: str, headers: Mapping[str, str] | str, body: bytes | None
) -> bytes:
    """The bytes of one request: request line, ``Host``, ``headers`` (a mapping, or lines already joined with
    CRLF after each), ``Content-Length`` when there is a body (or the method sends one), then the body."""
    fixed = headers if isinstance(headers, str) else "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    length = f"Content-Length: {len(body or b'')}\r\n" if body is not None or method in ("POST", "PUT", "PATCH") else ""
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{fixed}{length}\r\n".encode("latin-1")
    return head + body if body else head
