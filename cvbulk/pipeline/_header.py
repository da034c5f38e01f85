"""The header check: is an image fine to send as it is, judged from its first bytes and its size alone?

A blob that passes can go to the service as a URL (the service fetches it; no byte passes through cvbulk).
One that fails for good (not an image, a bomb, a wild aspect ratio) is rejected from its header; one that
needs a fix (too large, too many pixels a side, a format or mode the service refuses) or whose header does not
fit in the bytes read must be downloaded and prepared whole (``prepare_image``).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from typing import Literal

from PIL import Image, UnidentifiedImageError

from .labels import RegionLabel
from .prepare import _REFUSED_MODES, ImageLimits, Rejected, _format, _not_image_reason

__all__ = ["HeadVerdict", "check_head"]

#: "pass": send as it is; "fix": download it whole and let ``prepare_image`` decide.
HeadVerdict = Literal["pass", "fix"]


def check_head(
    head: bytes, size: int, limits: ImageLimits, regions: Sequence[RegionLabel] = ()
) -> HeadVerdict | Rejected:
    """Judge an image of ``size`` bytes from its first bytes ``head`` (``len(head) < size`` for most)."""
    if limits.max_regions is not None and len(regions) > limits.max_regions:
        return Rejected("too_many_regions", f"{len(regions)} regions, over the limit of {limits.max_regions} per image")
    if size <= 0 or not head:
        return Rejected("empty", "empty file (0 bytes)")
    if size > limits.max_file_bytes:
        return Rejected("too_large", f"{size / 2**20:,.0f} MB, far over the {limits.max_bytes / 2**20:g} MB limit (not read, not fixable)")
    if _plain_within(head, size, limits):
        return "pass"
    try:
        img = Image.open(io.BytesIO(head))
    except Image.DecompressionBombError:
        return "fix"  # prepare_image words the refusal (it reads the claimed pixels)
    except UnidentifiedImageError:
        if len(head) >= size:
            return Rejected("not_image", _not_image_reason(head))
        return "fix"  # a header longer than what was read: only the whole file can tell
    except Exception:
        return "fix"
    with img:
        w, h = img.size
        if w <= 0 or h <= 0:
            return Rejected("corrupt", f"image header gives an empty size {w}x{h}")
        if w * h > limits.max_pixels or max(w, h) / min(w, h) > limits.max_aspect:
            return "fix"  # rejected by prepare_image with its usual words
        within = (
            _format(img) in limits.formats
            and max(w, h) <= limits.max_side
            and size <= limits.max_bytes
            and img.mode not in _REFUSED_MODES
            and getattr(img, "n_frames", 1) == 1
        )
    return "pass" if within else "fix"


# -- the common case without Pillow ---------------------------------------------------------------------------
# Nearly every image of a dump is a plain 8-bit JPEG or PNG well within the limits. Reading its size and mode
# straight from the header bytes costs ~5 us; Image.open ~50 us (a file object, a plugin lookup, every marker's
# handler). The reading below says "pass" only where Pillow would, checking what Pillow's own open checks (each
# segment whole, quantization tables well formed, 8-bit samples, 1 or 3 components; a PNG's chunk CRCs, no
# animation); anything else, however ordinary, is left to Pillow, which words every refusal.

_JPEG_FRAMES = (0xC0, 0xC1, 0xC2)  # baseline, extended and progressive Huffman: what Pillow decodes as 8-bit
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: (colour type, bit depth) of the PNG modes sent as they are: L, RGB, P (any depth), LA, RGBA, all 8-bit.
_PNG_PLAIN = frozenset({(0, 8), (2, 8), (3, 1), (3, 2), (3, 4), (3, 8), (4, 8), (6, 8)})


def _plain_within(head: bytes, size: int, limits: ImageLimits) -> bool:
    """Whether ``head`` is the whole header of a plain JPEG or PNG whose size, format and mode are within
    ``limits`` (False: not known without Pillow)."""
    if head.startswith(b"\xff\xd8"):
        fmt, shape = "JPEG", _jpeg_shape(head)
    elif head.startswith(_PNG_SIGNATURE):
        fmt, shape = "PNG", _png_shape(head)
    else:
        return False
    if shape is None or fmt not in limits.formats or size > limits.max_bytes:
        return False
    w, h = shape
    return 0 < w <= limits.max_side and 0 < h <= limits.max_side and w * h <= min(limits.max_pixels, _BOMB) and (
        max(w, h) / min(w, h) <= limits.max_aspect
    )


_BOMB = (Image.MAX_IMAGE_PIXELS or 1 << 62) * 2  # Pillow refuses to open past this


def _jpeg_shape(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG whose segments up to the first scan are all in ``head`` and well formed, with
    one 8-bit frame of 1 (L) or 3 (RGB) components and no second picture (MPO)."""
    pos, end, shape = 2, len(head), None
    while pos + 4 <= end:
        ff, marker, length = _SEGMENT(head, pos)  # one C call for the marker and its length: ~10 segments a file
        if ff != 0xFF:
            return None
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        stop = pos + 2 + length
        if marker in _PASSED_SEGMENTS:  # Huffman tables, APPn but APP2, comments: only their length matters
            if length < 2 or stop > end:
                return None
            pos = stop
            continue
        if marker == 0xDA:  # start of scan: the header is over
            return shape
        if marker < 0xC0 or 0xD0 <= marker <= 0xD9:  # stand-alone markers have no place here: Pillow decides
            return None
        if length < 2 or stop > end:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
            if shape is not None or marker not in _JPEG_FRAMES or length < 8:
                return None
            if head[pos + 4] != 8 or head[pos + 9] not in (1, 3) or length < 8 + 3 * head[pos + 9]:
                return None
            shape = ((head[pos + 7] << 8) | head[pos + 8], (head[pos + 5] << 8) | head[pos + 6])
        elif (marker == 0xDB and not _quantization_tables_whole(head, pos + 4, stop)) or (
            marker == 0xE2 and head[pos + 4 : pos + 8] == b"MPF\x00"  # a second picture: Pillow's MPO
        ):
            return None
        pos = stop
    return None


_SEGMENT = struct.Struct(">BBH").unpack_from
_PASSED_SEGMENTS = frozenset({0xC4, 0xFE, *range(0xE0, 0xF0)} - {0xE2})


def _quantization_tables_whole(head: bytes, pos: int, stop: int) -> bool:
    while pos < stop:
        pos += 1 + (64 if head[pos] >> 4 == 0 else 128)
    return pos == stop


def _png_shape(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG whose chunks up to the first image data are all in ``head`` with good CRCs,
    in a plain 8-bit mode (or palette), not animated."""
    pos, end, shape = 8, len(head), None
    while pos + 8 <= end:
        length = int.from_bytes(head[pos : pos + 4], "big")
        kind = head[pos + 4 : pos + 8]
        if kind == b"IDAT":
            return shape
        stop = pos + 12 + length
        if stop > end or zlib.crc32(head[pos + 4 : stop - 4]) != int.from_bytes(head[stop - 4 : stop], "big"):
            return None
        if kind == b"IHDR":
            if shape is not None or length != 13 or (head[pos + 17], head[pos + 16]) not in _PNG_PLAIN:
                return None
            shape = (int.from_bytes(head[pos + 8 : pos + 12], "big"), int.from_bytes(head[pos + 12 : pos + 16], "big"))
        elif shape is None or kind == b"acTL":  # IHDR first; animation: Pillow counts the frames
            return None
        pos = stop
    return None

