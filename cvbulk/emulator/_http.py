"""Request parsing and response shapes shared by the training and prediction routes."""

from __future__ import annotations

import json
from typing import Any

import anyio
from aiohttp import web

from ._errors import ApiError
from ._multipart import boundary_of, split_form

__all__ = [
    "json_response", "q_list", "q_bool", "q_int", "q_str", "read_json", "read_images",
    "base_url", "image_json", "IMAGES", "MAX_BATCH_IMAGES", "MAX_BATCH_TAGS",
]

MAX_BATCH_IMAGES = 64
MAX_BATCH_TAGS = 20
_dumps = json.dumps
# How many images a request carried, for the per-image latency switch.
IMAGES = web.RequestKey("cvbulk_images", int)


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


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    raw = await request.read()
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
    body = await request.read()
    images: list[tuple[str, bytes]] = []
    if request.content_type.startswith("multipart/"):
        boundary = boundary_of(request.headers.get("Content-Type", ""))
        if boundary is None:
            raise ApiError(400, "BadRequestImageStream", "The multipart body has no boundary")
        try:
            parts = await anyio.to_thread.run_sync(split_form, body, boundary)
        except ValueError as exc:
            raise ApiError(400, "BadRequestImageStream", f"Malformed multipart body: {exc}") from None
        if len(parts) > limit:
            raise ApiError(400, "BadRequestImageBatch", f"Too many images: at most {limit} per request")
        images = [(f'"{filename or name}"', data) for name, filename, data in parts]
    elif body:
        images.append(("", body))
    if not images:
        raise ApiError(400, "BadRequestImageBatch", "The request has no image data")
    return images


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def image_json(record: dict, base: str) -> dict:
    """An Image record with the URIs the emulator serves (no key needed, like the service's SAS URLs)."""
    out = dict(record)
    sha = out.pop("_sha")
    blob = f"{base}/emulator/blobs/{sha}"
    out["resizedImageUri"] = f"{blob}/resized"
    out["thumbnailUri"] = f"{blob}/thumbnail"
    out["originalImageUri"] = blob
    if not out.get("regions"):
        out.pop("regions", None)  # the service leaves out what an image does not have
    return out
