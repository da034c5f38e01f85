"""Turning uploaded bytes into stored images: header check, hash, blob write (worker threads)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import anyio

from ._blobs import BlobStore
from ._imaging import TRAINING_MAX_BYTES, ImageInfo, inspect_image
from ._store import NewImage

__all__ = ["Upload", "prepare_uploads", "decode_base64", "fetch_url"]


@dataclass
class Upload:
    source_url: str
    data: bytes | memoryview | None  # None when the source could not be read (status says why)
    tag_ids: Sequence[str] = ()
    regions: Sequence[dict] = field(default_factory=list)
    status: str | None = None
    base64: object = None  # ImageFileCreateEntry.contents, decoded in the worker thread


def prepare_uploads(blobs: BlobStore, uploads: Sequence[Upload]) -> list[NewImage]:
    """Synchronous (run in a worker thread): header-only check, SHA-256, content-addressed write."""
    out: list[NewImage] = []
    for up in uploads:
        if up.data is None and up.base64 is not None and not up.status:
            up.data = decode_base64(up.base64)
            up.status = None if up.data else "ErrorImageFormat"
        if up.status or up.data is None:
            out.append(NewImage(up.source_url, status=up.status or "ErrorSource"))
            continue
        info = inspect_image(up.data, max_bytes=TRAINING_MAX_BYTES)
        if not isinstance(info, ImageInfo):
            out.append(NewImage(up.source_url, status=info))
            continue
        digest = hashlib.sha256(up.data).hexdigest()
        blobs.put_known(digest, up.data)
        out.append(NewImage(
            up.source_url, sha256=digest, width=info.width, height=info.height, format=info.format,
            size=len(up.data), tag_ids=list(up.tag_ids), regions=list(up.regions),
        ))
    return out


def decode_base64(value: object) -> bytes | None:
    """``contents`` of an ImageFileCreateEntry (swagger "byte": base64), or None when it is not."""
    if isinstance(value, list):  # some clients send a JSON array of byte values
        try:
            return bytes(value)
        except (TypeError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return None


_FETCH_STEPS = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30)
_FETCH_CAP = 600.0


async def fetch_url(session: aiohttp.ClientSession, url: str, max_bytes: int) -> bytes | str:
    """The bytes at an http(s) URL, or the per-image status (ErrorSource / ErrorImageSize)."""
    if not url.lower().startswith(("http://", "https://")):
        return "ErrorSource"
    try:
        return await _fetch_once(session, url, max_bytes)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        # a pooled connection the server had just closed (Azurite closes idle ones after 5 s, the pool keeps
        # them 15 s): a GET is safe to send again, once, on a new connection, as any HTTP client does
        pass
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return "ErrorSource"
    try:
        return await _fetch_once(session, url, max_bytes)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return "ErrorSource"


async def _fetch_once(session: aiohttp.ClientSession, url: str, max_bytes: int) -> bytes | str:
    # 30 s for each step of the fetch (connect, each read), not for the wait for a free connection:
    # a burst of URL batches queues for the session's pool, as at the service, instead of failing.
    # The outer bound keeps a server that dribbles bytes from holding a fetch for ever.
    with anyio.fail_after(_FETCH_CAP):
        async with session.get(url, timeout=_FETCH_STEPS) as resp:
            if resp.status != 200:
                return "ErrorSource"
            data = bytearray()
            async for chunk in resp.content.iter_chunked(256 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    return "ErrorImageSize"
            return bytes(data)
