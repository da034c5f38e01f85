"""What the export job checks of a downloaded image before it writes it, and how it names its bytes.

Where an image goes and the label files are the writers' business (``cvbulk.pipeline.formats``); this
module only looks at bytes: their format (the file extension and the content type of the blob) and
whether they are a whole image of the size the service reports (a header read by Pillow, no full decode).
"""

from __future__ import annotations

import io

__all__ = ["sniff_extension", "content_type", "check_image"]

_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".bmp": "image/bmp",
          ".tif": "image/tiff", ".webp": "image/webp"}


def sniff_extension(data: bytes) -> str:
    """The file extension of the image bytes (the service stores jpg, png, bmp and gif)."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if data[:2] == b"BM":
        return ".bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".jpg"  # unknown: the service accepted it as an image; jpg is what it most often is


def content_type(ext: str) -> str:
    return _TYPES.get(ext, "application/octet-stream")


def check_image(data: bytes, width: int | None, height: int | None) -> tuple[int, int] | str:
    """The image's (width, height) read from its header, or why the bytes are not the image the service
    described (empty, not an image, another size). Pillow reads the header only: no full decode."""
    if not data:
        return "the download was empty"
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            size = (int(im.size[0]), int(im.size[1]))
    except Exception as exc:  # Pillow raises many kinds for bytes that are not an image
        return f"the download is not a readable image ({type(exc).__name__}), {len(data)} bytes"
    if width and height and size != (width, height):
        return f"the download is {size[0]}x{size[1]}, the service says {width}x{height}"
    return size
