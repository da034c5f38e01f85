"""Image checks on upload (header only, no decode) and the resized copies the emulator serves."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

__all__ = [
    "TRAINING_MAX_BYTES",
    "PREDICTION_MAX_BYTES",
    "MAX_SIDE",
    "ImageInfo",
    "inspect_image",
    "resized_copy",
]

TRAINING_MAX_BYTES = 6 * 1024 * 1024
PREDICTION_MAX_BYTES = 4 * 1024 * 1024
MAX_SIDE = 10_240
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "GIF": "image/gif"}


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


#: The front of an image that holds the header of nearly every photo: a header parsed from it is the
#: header of the whole image; one that does not fit is looked at whole.
_HEAD = 64 * 1024


def inspect_image(data: bytes | memoryview, *, max_bytes: int = TRAINING_MAX_BYTES) -> ImageInfo | str:
    """The image's format and size from its header, or the service's per-image status
    (``ErrorImageFormat`` / ``ErrorImageSize``) saying why it is refused."""
    if len(data) > max_bytes:
        return "ErrorImageSize"
    if len(data) > _HEAD:
        # The header parsed from a copy of the front (not of the whole image): any answer but a good
        # one is asked again of the whole, so a header cut short never decides.
        try:
            found: ImageInfo | str | None = _inspect(bytes(data[:_HEAD]))
        except Exception:  # a plugin choking on the cut: the whole decides
            found = None
        if isinstance(found, ImageInfo):
            return found
    return _inspect(data if isinstance(data, bytes) else bytes(data))


def _inspect(data: bytes) -> ImageInfo | str:
    try:
        with Image.open(io.BytesIO(data)) as img:  # lazy: reads the header only
            fmt, (width, height) = img.format, img.size
    except Image.DecompressionBombError:  # only past ~179 Mpx, so a side is past 10,240 px
        return "ErrorImageSize"
    except (UnidentifiedImageError, OSError, ValueError):
        return "ErrorImageFormat"
    if fmt not in _FORMATS:
        return "ErrorImageFormat"
    if width > MAX_SIDE or height > MAX_SIDE or width < 1 or height < 1:
        return "ErrorImageSize"
    return ImageInfo(fmt, width, height)


def content_type(fmt: str) -> str:
    return _FORMATS.get(fmt, "application/octet-stream")


def resized_copy(data: bytes, max_side: int) -> tuple[bytes, str]:
    """A JPEG no larger than ``max_side`` (the service's resizedImageUri / thumbnailUri)."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, much faster
        img = img.convert("RGB")
        img.thumbnail((max_side, max_side))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
    return out.getvalue(), "image/jpeg"
