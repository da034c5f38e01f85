"""What the two lean HTTP/1.1 clients share (``client._lean`` for the service's JSON calls, ``storage._ranged``
for ranged blob reads): whether a proxy is in the way, opening a connection, reading a chunked body. It imports
nothing of cvbulk: both layers stand on it."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import anyio

__all__ = ["proxied", "connect", "chunked_body"]

P = TypeVar("P", bound=asyncio.Protocol)
_TLS: ssl.SSLContext | None = None


def proxied(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, as
    requests and the Azure SDK read them): a lean client then leaves the request to one that honours it."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme or "https") or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


async def connect(factory: Callable[[], P], host: str, port: int, *, https: bool, timeout: float | None) -> P:
    """A new connection with ``factory``'s protocol; TLS verified as aiohttp does it (the system's trust store,
    or ``SSL_CERT_FILE``). Raises ``TimeoutError`` after ``timeout``, else the ``OSError`` of the failure."""
    global _TLS
    context = None
    if https:
        if _TLS is None:
            _TLS = ssl.create_default_context()
        context = _TLS
    loop = asyncio.get_running_loop()
    with anyio.fail_after(timeout):
        _, protocol = await loop.create_connection(
            factory, host, port, ssl=context, server_hostname=host if https else None
        )
    return protocol


def chunked_body(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """The body of a chunked answer whose first chunk starts at ``pos`` of ``buf``, and where the answer ends
    (past its trailer); None while it is not all in ``buf``. Raises ValueError on a malformed chunk size."""
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        start = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buf) < start + size + 2:
            return None
        body += buf[start : start + size]
        pos = start + size + 2
