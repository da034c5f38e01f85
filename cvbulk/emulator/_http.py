"""Request parsing and response shapes shared by the training and prediction routes."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from aiohttp import web

from ._domains import domain_by_id
from ._errors import ApiError
from ._multipart import boundary_of, split_form

__all__ = [
    "json_response", "q_list", "q_bool", "q_int", "q_str", "read_json", "read_images",
    "storage_url", "image_json", "blob_uris", "iteration_view", "project_view", "read_body", "image_views", "IMAGES", "MAX_BATCH_IMAGES",
    "MAX_BATCH_TAGS", "REQUEST_ID",
]

MAX_BATCH_IMAGES = 64
MAX_BATCH_TAGS = 20
_dumps = json.dumps
# How many images a request carried, for the per-image latency switch.
IMAGES = web.RequestKey("cvbulk_images", int)
# The request's id (apim-request-id / Request-Id headers; a prediction's id equals it).
REQUEST_ID = web.RequestKey("cvbulk_request_id", str)


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=_dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _query(request: web.Request, name: str) -> str | None:
    # Query names are matched without regard to case, as ASP.NET (the service) does.
    for key, value in request.query.items():
        if key.lower() == name.lower():
            return value
    return None


def q_str(request: web.Request, name: str, *, required: bool = False) -> str | None:
    value = _query(request, name)
    if required and not value:
        raise ApiError(400, "BadRequestRequiredParamIsNull", f"The parameter {name} is required")
    return value


def q_list(request: web.Request, name: str) -> list[str]:
    """A csv array (``collectionFormat: csv``), also accepting the parameter repeated."""
    values: list[str] = []
    for key, value in request.query.items():
        if key.lower() == name.lower():
            values += [v.strip() for v in value.split(",") if v.strip()]
    return values


def q_bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = _query(request, name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, "BadRequestInvalid", f"The parameter {name} must be true or false")


def q_int(request: web.Request, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
    value = _query(request, name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "BadRequestInvalid", f"The parameter {name} must be an integer") from None
    if number < low or (high is not None and number > high):
        raise ApiError(400, "BadRequestInvalid", f"The parameter {name} is out of range")
    return number


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the read timeout: a client that stops sending mid-body (a half-open
    connection) is cut off instead of holding a handler for ever."""
    from ._state import STATE

    try:
        with anyio.fail_after(request.app[STATE].config.read_timeout):
            return await request.read()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ApiError(408, "RequestTimeout", "The request body did not arrive in time") from None


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise ApiError(400, "BadRequestRequiredParamIsNull", "The request body is required")
        return None
    try:
        if len(raw) > 64 * 1024:  # image batches in base64: parse off the event loop
            return await anyio.to_thread.run_sync(json.loads, raw)
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "BadRequestInvalid", "The request body is not valid JSON") from None


async def read_images(request: web.Request, *, limit: int = MAX_BATCH_IMAGES) -> list[tuple[str, bytes]]:
    """The images of a CreateImagesFromData / QuickTest / Classify body: every file part of a
    multipart form (whatever its field name), or one octet-stream body. (sourceUrl, bytes) each;
    sourceUrl is the file name in literal quotes, as the service echoes it."""
    body = await read_body(request)
    return await _images_of(request, body, len(body), limit)  # type: ignore[return-value]


@asynccontextmanager
async def image_views(request: web.Request, *,
                      limit: int = MAX_BATCH_IMAGES) -> AsyncIterator[list[tuple[str, bytes | memoryview]]]:
    """``read_images`` without a copy per image: inside the block each image is a memoryview of one
    buffer holding the body, and the buffer is kept for the next request afterwards (aiohttp's
    ``read()`` copies a body twice more, and a fresh 23 MB buffer costs the kernel ~6,000 zeroed pages)."""
    from ._state import STATE

    config = request.app[STATE].config
    length = request.content_length
    if length is None or length > _BUFFERS.largest:  # chunked, or too big to keep
        yield await _images_of(request, await read_body(request), None, limit)
        return
    if length > config.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(config.max_body_bytes, length)
    buf = _BUFFERS.take(length)
    try:
        await _fill(request, buf, length, config.read_timeout)
        yield await _images_of(request, buf, length, limit)
    finally:
        _BUFFERS.give(buf)


async def _images_of(request: web.Request, body: bytes | bytearray, length: int | None,
                     limit: int) -> list[tuple[str, bytes | memoryview]]:
    """The images of a body (its first ``length`` bytes): views of it when it is a bytearray."""
    images: list[tuple[str, bytes | memoryview]] = []
    if request.content_type.startswith("multipart/"):
        boundary = boundary_of(request.headers.get("Content-Type", ""))
        if boundary is None:
            raise ApiError(400, "BadRequestImageStream", "The multipart body has no boundary")
        try:
            parts = await anyio.to_thread.run_sync(split_form, body, boundary, length)
        except ValueError as exc:
            raise ApiError(400, "BadRequestImageStream", f"Malformed multipart body: {exc}") from None
        if len(parts) > limit:
            raise ApiError(400, "BadRequestImageBatch", f"Too many images: at most {limit} per request")
        images = [(f'"{filename or name}"', data) for name, filename, data in parts]
    elif length:
        images.append(("", memoryview(body)[:length] if isinstance(body, bytearray) else body))
    if not images:
        raise ApiError(400, "BadRequestImageBatch", "The request has no image data")
    return images


async def _fill(request: web.Request, buf: bytearray, length: int, timeout: float) -> None:
    """The body's ``length`` bytes into ``buf``, within the read timeout (as ``read_body``)."""
    # As aiohttp's read() does: no pause/resume of the socket every 128 KB while the body arrives.
    request.content.set_read_chunk_size(length)
    got = 0
    try:
        with anyio.fail_after(timeout), memoryview(buf) as view:
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                end = got + len(chunk)
                if end > length:
                    raise ApiError(400, "BadRequestImageStream", "The body is longer than its Content-Length")
                view[got:end] = chunk
                got = end
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ApiError(408, "RequestTimeout", "The request body did not arrive in time") from None
    if got != length:
        raise ApiError(400, "BadRequestImageStream", "The body is shorter than its Content-Length")


class _Buffers:
    """Request buffers kept for reuse: at most ``keep`` of them, none over ``largest`` bytes."""

    def __init__(self, keep: int = 4, largest: int = 64 * 1024 * 1024) -> None:
        self.keep = keep
        self.largest = largest
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes (the smallest kept one that fits, else a new one)."""
        with self._lock:  # emulators on their own loops in threads share the buffers
            fits = [i for i, b in enumerate(self._free) if len(b) >= size]
            if fits:
                return self._free.pop(min(fits, key=lambda i: len(self._free[i])))
        return bytearray(size)

    def give(self, buf: bytearray) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buf)
                return
            smallest = min(range(len(self._free)), key=lambda i: len(self._free[i]))
            if len(self._free[smallest]) < len(buf):  # keep the largest: they fit the most requests
                self._free[smallest] = buf


_BUFFERS = _Buffers()


def storage_url(request: web.Request) -> str:
    """The origin of the emulator's storage listener as this request reached the emulator: the same
    scheme and host, the storage port. The service's links are on a storage account's host
    (``irisprod...training.blob.core.windows.net``), not on the endpoint's: a client that paces calls to
    the endpoint does not pace these downloads."""
    from ._state import STATE

    host = request.url.raw_host or "127.0.0.1"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{request.scheme}://{host}:{request.app[STATE].storage_port}"


_URI_PREFIX = web.RequestKey("cvbulk_uri_prefix", tuple)


def blob_uris(request: web.Request, project_id: str, sha: str) -> dict[str, str]:
    """resizedImageUri / thumbnailUri / originalImageUri of a stored image: signed for this project
    and image, expiring, like the service's SAS URLs, on the storage listener. The expiry and signature sit in the path
    (``/emulator/blobs/<project>/<size>/<expiry>/<sig>/<sha256>``) so that a URL still ends with the
    content's name. One signature covers the three sizes of one image."""
    cached = request.get(_URI_PREFIX)
    if cached is None or cached[0] != project_id:
        from ._state import STATE

        pid = str(uuid.UUID(project_id))
        cached = (project_id, f"{storage_url(request)}/emulator/blobs/{pid}/", pid, request.app[STATE].signer)
        request[_URI_PREFIX] = cached
    _, prefix, pid, signer = cached
    _, expiry, sig = signer.sign(f"blobs/{pid}/{sha}")
    return {"resizedImageUri": f"{prefix}resized/{expiry}/{sig}/{sha}",
            "thumbnailUri": f"{prefix}thumbnail/{expiry}/{sig}/{sha}",
            "originalImageUri": f"{prefix}original/{expiry}/{sig}/{sha}"}


def image_json(record: dict, request: web.Request, project_id: str, *, created: bool = False) -> dict:
    """An Image record with its URIs. The service leaves out what an image does not have (no
    ``tags`` key on an untagged image), and a create result names no tag (``tagName: null``;
    recorded for tags; regions, where the recordings are silent, keep the spec's name)."""
    out = dict(record)
    sha = out.pop("_sha")
    tags, regions = out.pop("tags", None), out.pop("regions", None)
    out.update(blob_uris(request, project_id, sha))
    if tags:
        out["tags"] = [{**t, "tagName": None} for t in tags] if created else tags
    if regions:
        out["regions"] = regions
    return out


def iteration_view(request: web.Request, iteration: dict) -> dict:
    """An Iteration as the request's API version writes it: v3.4-preview adds
    ``customBaseModelInfo`` / ``trainingErrorDetails`` and has ``exportableTo: null``; v3.0-v3.3
    have neither field and ``exportableTo`` lists the platforms (recorded ``[]`` for a
    non-compact domain; the domain's ``exportablePlatforms`` when the iteration is exportable)."""
    version = request.match_info.get("version")
    if version == "v3.4-preview":
        return iteration
    drop = {"customBaseModelInfo", "trainingErrorDetails"}
    if version == "v3.0":  # recorded: v3.0 had neither of these yet
        drop |= {"trainingTimeInMinutes", "originalPublishResourceId"}
    out = {k: v for k, v in iteration.items() if k not in drop}
    platforms: list[str] = []
    if iteration.get("exportable"):
        domain = domain_by_id(iteration.get("domainId") or "")
        platforms = list(domain["exportablePlatforms"]) if domain else []
    out["exportableTo"] = platforms
    return out


def project_view(request: web.Request, project: dict) -> dict:
    """A Project as the request's API version writes it: v3.0 (recorded) has no ``status`` and no
    ``imageProcessingSettings`` yet."""
    if request.match_info.get("version") != "v3.0":
        return project
    settings = {k: v for k, v in project["settings"].items() if k != "imageProcessingSettings"}
    return {**{k: v for k, v in project.items() if k != "status"}, "settings": settings}
