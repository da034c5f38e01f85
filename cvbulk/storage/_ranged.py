"""Ranged GETs of blobs through their read URLs: plain HTTP/1.1 on kept-alive connections, nothing else.

The header check reads a few KB of every blob, one request each: per image, the request is most of what the
client spends when the service fetches the bytes. aiohttp's client costs ~0.4 ms of CPU per request (URL and
header objects, cookie jar, tracing, timers); this one writes the request line and three headers and reads back
the status, ``Content-Length`` (or a chunked body) and ``Connection``: ~0.1 ms. It serves exactly that request,
a GET of a signed URL (the SAS in its query authorises it, so no header is signed), and nothing else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from urllib.parse import urlsplit

import anyio

__all__ = ["RangedReader", "RangedReadError"]

_MAX_HEAD = 64 * 1024  # a response's status line and headers: the storage service sends well under 2 KB


class RangedReadError(OSError):
    """The connection failed or the answer was not HTTP/1.1 as expected (the URL is never in the message)."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.got_bytes = False  # any byte of the current answer: a failure after it is not a stale connection
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._status = 0
        self._body_at = -1  # where the body starts in _buf (-1: headers not complete yet)
        self._length = -1  # Content-Length (-1: chunked)
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(RangedReadError(f"connection closed ({type(exc).__name__ if exc else 'by the server'})"))

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buf.clear()
        self._body_at, self.got_bytes = -1, False
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self._waiter = None

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self._buf += data
        try:
            done = self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(RangedReadError(f"not an HTTP answer ({exc})"))
            self.close()
            return
        if done is not None and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(done)
            self._waiter = None

    def _parse(self) -> tuple[int, bytes, bool] | None:
        buf = self._buf
        if self._body_at < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("headers too long")
                return None
            lines = bytes(buf[:end]).split(b"\r\n")
            version, status = lines[0].split(b" ", 2)[:2]
            if not version.startswith(b"HTTP/1."):
                raise ValueError("not HTTP/1.x")
            self._status = int(status)
            self._length, self._close_after = 0, version == b"HTTP/1.0"
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection":
                    self._close_after = value.strip().lower() == b"close"
            if chunked:
                self._length = -1
            self._body_at = end + 4
        if self._length >= 0:
            stop = self._body_at + self._length
            return (self._status, bytes(buf[self._body_at : stop]), self._close_after) if len(buf) >= stop else None
        return self._chunked()

    def _chunked(self) -> tuple[int, bytes, bool] | None:
        buf, pos, body = self._buf, self._body_at, bytearray()
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
            start = line_end + 2
            if size == 0:
                return (self._status, bytes(body), self._close_after) if buf.find(b"\r\n\r\n", line_end) >= 0 else None
            if len(buf) < start + size + 2:
                return None
            body += buf[start : start + size]
            pos = start + size + 2


class RangedReader:
    """Ranged GETs through signed URLs, at most ``limit`` at once, connections kept alive and reused."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, limit: int = 64) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._slots = anyio.Semaphore(limit)
        self._idle: defaultdict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._ssl: ssl.SSLContext | None = None

    async def get(self, url: str, start: int, stop: int, etag: str) -> tuple[int, bytes]:
        """``(status, body)`` of ``GET url`` for bytes ``start`` to ``stop`` (exclusive), ``If-Match: etag``.
        Raises :class:`RangedReadError` or ``TimeoutError`` when there is no whole answer."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RangedReadError("not an http(s) URL")
        https = parts.scheme == "https"
        key = (parts.scheme, parts.hostname, parts.port or (443 if https else 80))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
            f"Range: bytes={start}-{stop - 1}\r\nIf-Match: {etag}\r\n\r\n"
        ).encode("latin-1")
        async with self._slots:
            idle = self._idle[key]
            while idle:
                conn = idle.pop()
                if conn.closed:
                    continue
                try:
                    return await self._exchange(key, conn, request)
                except RangedReadError:
                    if conn.got_bytes:
                        raise
                    # a kept-alive connection the server had closed meanwhile: a new one, once
                    break
            conn = await self._connect(key, https)
            return await self._exchange(key, conn, request)

    async def _connect(self, key: tuple[str, str, int], https: bool) -> _Connection:
        context = None
        if https:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        with anyio.fail_after(self._connect_timeout):
            _, conn = await loop.create_connection(
                _Connection, key[1], key[2], ssl=context, server_hostname=key[1] if https else None
            )
        return conn

    async def _exchange(self, key: tuple[str, str, int], conn: _Connection, request: bytes) -> tuple[int, bytes]:
        ok = False
        try:
            with anyio.fail_after(self._read_timeout):
                status, body, close_after = await conn.request(request)
            ok = True
        finally:
            if not ok:  # failed, timed out or cancelled mid-answer: the connection's state is unknown
                conn.close()
        if close_after or conn.closed:
            conn.close()
        else:
            self._idle[key].append(conn)
        return status, body

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
