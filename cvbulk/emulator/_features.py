"""Image descriptors for the emulator's trainer: Pillow only, no numpy.

Everything is computed on a small thumbnail with Pillow's C operations (``point`` lookup tables,
``Kernel`` filters, ``BOX`` resizes), so the per-pixel work never runs in Python. Two products:

* :func:`image_vector` - one L2-normalised vector per image (colour histogram, colour layout,
  edge-orientation histograms at two scales) for classification;
* :func:`cell_grid` - per-cell channel means on a GRID x GRID grid as a summed-area table, so that
  the detector can describe any grid-aligned window in O(channels).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from PIL import Image, ImageChops, ImageFilter, ImageOps

__all__ = [
    "FEATURE_VERSION",
    "GRID",
    "CellGrid",
    "UndecodableImageError",
    "cell_grid",
    "decode_thumbnail",
    "image_vector",
]

# Bumped whenever a descriptor changes, so stored models never meet vectors of another layout.
FEATURE_VERSION = 1
CLASSIFY_SIDE = 128  # longest side of the thumbnail for whole-image descriptors
DETECT_SIDE = 192  # detection needs a little more resolution: forks are thin
GRID = 16  # detection cells per side (normalised space, so cells follow the aspect ratio)
_MIN_SIDE = 16  # tiny images are scaled up to this so that every filter and grid has pixels

_BOX = Image.Resampling.BOX
_BILINEAR = Image.Resampling.BILINEAR


# --------------------------------------------------------------------------- decoding


def decode_thumbnail(data: bytes, max_side: int) -> Image.Image:
    """Decode ``data`` into an RGB image whose longest side is at most ``max_side`` (and >= 16 px).

    JPEG draft mode lets libjpeg decode at 1/2..1/8 scale, which is what makes a 3 MB photo cheap.
    Every Pillow mode is flattened to RGB; transparency is composited on white; EXIF orientation
    is applied so that regions drawn on the displayed image line up.
    """
    opened = Image.open(io.BytesIO(data))
    if opened.format == "JPEG":
        opened.draft("RGB", (max_side, max_side))
    img: Image.Image = ImageOps.exif_transpose(opened) or opened
    if img.mode in _WIDEN_BEFORE_RESIZE or img.mode.startswith("I;16"):
        # modes that cannot be resampled smoothly: widen them first (cheap next to the decode)
        img = img.convert(_widened_mode(img))
    if max(img.size) > max_side:
        # shrink before any per-pixel conversion; reducing_gap: a cheap integer reduce first,
        # then a proper resample of the rest
        img.thumbnail((max_side, max_side), _BILINEAR, reducing_gap=2.0)
    img = _to_rgb(img)
    w, h = img.size
    if min(w, h) < _MIN_SIDE:
        # never past max_side: a 2 x 300 sliver becomes 16 x 128, not 16 x 2400
        scale = _MIN_SIDE / min(w, h)
        cap = max(max_side, _MIN_SIDE)
        new_w, new_h = (max(_MIN_SIDE, min(cap, round(v * scale))) for v in (w, h))
        img = img.resize((new_w, new_h), _BILINEAR)
    return img


_WIDEN_BEFORE_RESIZE = ("1", "P", "PA")


def _widened_mode(img: Image.Image) -> str:
    if img.mode == "1":
        return "L"
    if img.mode.startswith("I;16"):
        return "I"
    if img.mode == "PA" or "transparency" in img.info:
        return "RGBA"
    return "RGB"


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # high bit depth: stretch the actual range to 0..255 instead of clipping at 255
        img = img.convert("F") if mode == "F" else img.convert("I")
        lo, hi = cast("tuple[float, float]", img.getextrema())  # one band: (min, max)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = img.point(lambda v: (v - lo) * scale)
        return img.convert("L").convert("RGB")
    if (mode == "P" and "transparency" in img.info) or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


# --------------------------------------------------------------------------- code images


def _lut(fn: Callable[[int], int]) -> list[int]:
    return [max(0, min(255, int(fn(i)))) for i in range(256)]


# Fine colour code for whole images: 12 hues x 2 saturations x 3 values for coloured pixels,
# 5 grey levels for unsaturated or very dark ones (their hue is noise).
_N_COLOUR = 12 * 6 + 5
_H12 = _lut(lambda h: (h * 12 // 256) * 6)
_S2 = _lut(lambda s: 0 if s < 140 else 3)
_V3 = _lut(lambda v: v * 3 // 256)
_GREY5 = _lut(lambda v: 72 + v * 5 // 256)
# Coarse colour code for detection cells: 6 hues x 2 values, 4 grey levels.
_N_COARSE = 6 * 2 + 4
_H6 = _lut(lambda h: ((h + 21) % 256) * 6 // 256 * 2)  # shifted so that red is one bin, not two
_V2 = _lut(lambda v: 0 if v < 128 else 1)
_GREY4 = _lut(lambda v: 12 + v * 4 // 256)
_GREY_MASK_S = _lut(lambda s: 255 if s < 51 else 0)
_GREY_MASK_V = _lut(lambda v: 255 if v < 40 else 0)


def _colour_codes(hsv: tuple[Image.Image, ...], coarse: bool) -> Image.Image:
    h, s, v = hsv
    grey_mask = ImageChops.lighter(s.point(_GREY_MASK_S), v.point(_GREY_MASK_V))
    if coarse:
        colour = ImageChops.add(h.point(_H6), v.point(_V2))
        grey = v.point(_GREY4)
    else:
        colour = ImageChops.add(ImageChops.add(h.point(_H12), s.point(_S2)), v.point(_V3))
        grey = v.point(_GREY5)
    return Image.composite(grey, colour, grey_mask)


# Gradients: Sobel responses scaled into a byte (offset 128), each quantised to 13 signed
# logarithmic levels, combined into one code 0..168 per pixel. A 256-entry table then turns a code
# into an orientation-bin weight, so soft orientation histograms are a `point` plus a BOX resize.
_SOBEL_X = ImageFilter.Kernel((3, 3), [-1, 0, 1, -2, 0, 2, -1, 0, 1], scale=8, offset=128)
_SOBEL_Y = ImageFilter.Kernel((3, 3), [-1, -2, -1, 0, 0, 0, 1, 2, 1], scale=8, offset=128)
_LEVEL_EDGES = (2, 4, 8, 16, 32, 64)  # |d| below 2 is level 0
_LEVEL_VALUE = (0.0, 2.5, 5.5, 11.5, 23.5, 47.5, 90.0)
N_ORIENT = 8
N_MAG = 3
N_GRADIENT = N_ORIENT + N_MAG
_MAG_SATURATION = 24.0  # strong edges saturate, so contrast does not dominate shape


def _level(d: int) -> int:
    a = abs(d)
    q = sum(1 for e in _LEVEL_EDGES if a >= e)
    return q if d >= 0 else -q


_GX_CODE = _lut(lambda v: (_level(v - 128) + 6) * 13)
_GY_CODE = _lut(lambda v: _level(v - 128) + 6)


def _gradient_tables() -> list[list[int]]:
    orient = [[0] * 256 for _ in range(N_ORIENT)]
    mags = [[0] * 256 for _ in range(N_MAG)]
    for code in range(13 * 13):
        qx, qy = code // 13 - 6, code % 13 - 6
        gx = math.copysign(_LEVEL_VALUE[abs(qx)], qx)
        gy = math.copysign(_LEVEL_VALUE[abs(qy)], qy)
        mag = math.hypot(gx, gy)
        mags[0 if mag < 3 else 1 if mag < 12 else 2][code] = 255
        if mag < 3:
            continue  # flat: no orientation
        weight = min(1.0, mag / _MAG_SATURATION)
        # unsigned orientation (a fork is a fork upside down), soft-assigned to the two nearest bins
        pos = (math.atan2(gy, gx) % math.pi) / math.pi * N_ORIENT - 0.5
        lo = math.floor(pos)
        frac = pos - lo
        orient[lo % N_ORIENT][code] += round(255 * weight * (1 - frac))
        orient[(lo + 1) % N_ORIENT][code] += round(255 * weight * frac)
    return [[min(255, v) for v in t] for t in orient + mags]


_GRADIENT_TABLES = _gradient_tables()


def _gradient_codes(gray: Image.Image) -> Image.Image:
    gx = gray.filter(_SOBEL_X).point(_GX_CODE)
    gy = gray.filter(_SOBEL_Y).point(_GY_CODE)
    return ImageChops.add(gx, gy)


def _channel_means(codes: Image.Image, tables: list[list[int]], size: tuple[int, int]) -> list[bytes]:
    """Per table: the mean of table[code] over each cell of a ``size`` grid (bytes, row-major)."""
    return [codes.point(t).resize(size, _BOX).tobytes() for t in tables]


_COARSE_TABLES = [[255 if i == k else 0 for i in range(256)] for k in range(_N_COARSE)]


# --------------------------------------------------------------------------- whole-image vector


def _l2(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm > 0 else values


def _vector_uncached(data: bytes) -> list[float]:
    img = decode_thumbnail(data, CLASSIFY_SIDE)
    hsv = img.convert("HSV").split()
    pixels = img.size[0] * img.size[1]

    # colour histogram, square-rooted (Hellinger) so that one dominant colour does not drown the rest
    hist = _colour_codes(hsv, coarse=False).histogram()[:_N_COLOUR]
    colour = _l2([math.sqrt(c / pixels) for c in hist])

    # colour layout: mean RGB on a 4x4 grid
    layout = _l2([b / 255.0 for b in img.resize((4, 4), _BOX).tobytes()])

    # edge orientation + magnitude histograms: whole image and 2x2 quadrants, then half scale
    gray = img.convert("L")
    quads = _channel_means(_gradient_codes(gray), _GRADIENT_TABLES, (2, 2))
    fine = [sum(q) / (4 * 255.0) for q in quads] + [b / 255.0 for q in quads for b in q]
    half = gray.resize((max(8, gray.size[0] // 2), max(8, gray.size[1] // 2)), _BOX)
    coarse = [q[0] / 255.0 for q in _channel_means(_gradient_codes(half), _GRADIENT_TABLES, (1, 1))]

    blocks = (colour, layout, _l2([math.sqrt(v) for v in fine]), _l2([math.sqrt(v) for v in coarse]))
    return _l2([v for block in blocks for v in block])


# --------------------------------------------------------------------------- detection grid


CHANNELS = _N_COARSE + N_GRADIENT
_STRIDE = (GRID + 1) * CHANNELS


@dataclass(frozen=True)
class CellGrid:
    """Summed-area table of per-cell channel means over a GRID x GRID grid laid over the image in
    normalised space: ``sums[(y * (GRID + 1) + x) * CHANNELS + k]`` is the sum of channel k over
    cells [0, x) x [0, y). A flat array of doubles: about 60 KB, cheap to cache."""

    sums: array

    def window_sum(self, x0: int, y0: int, x1: int, y1: int) -> list[float]:
        s, k = self.sums, CHANNELS
        a, b = (y0 * (GRID + 1) + x0) * k, (y0 * (GRID + 1) + x1) * k
        c, d = (y1 * (GRID + 1) + x0) * k, (y1 * (GRID + 1) + x1) * k
        corners = zip(s[a : a + k], s[b : b + k], s[c : c + k], s[d : d + k])
        return [vd - vb - vc + va for va, vb, vc, vd in corners]


def _grid_uncached(data: bytes) -> CellGrid:
    img = decode_thumbnail(data, DETECT_SIDE)
    hsv = img.convert("HSV").split()
    size = (GRID, GRID)
    planes = _channel_means(_colour_codes(hsv, coarse=True), _COARSE_TABLES, size)
    planes += _channel_means(_gradient_codes(img.convert("L")), _GRADIENT_TABLES, size)
    cells = list(zip(*planes))  # cells[y * GRID + x] = CHANNELS byte values
    sums = array("d", bytes(8 * _STRIDE * (GRID + 1)))
    for y in range(GRID):
        running = [0.0] * CHANNELS
        for x in range(GRID):
            running = [r + v / 255.0 for r, v in zip(running, cells[y * GRID + x])]
            above = (y * (GRID + 1) + x + 1) * CHANNELS
            here = above + _STRIDE
            column = zip(sums[above : above + CHANNELS], running)
            sums[here : here + CHANNELS] = array("d", [a + r for a, r in column])
    return CellGrid(sums)


# --------------------------------------------------------------------------- cache

_T = TypeVar("_T")


class _LRU:
    """A small thread-safe LRU keyed by content digest: retraining and cross-validation see the
    same images again and again, and decoding is the dominant cost."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[bytes, object] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, data: bytes, compute: Callable[[bytes], _T]) -> _T:
        key = hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
        value = compute(data)  # outside the lock: decoding runs in parallel in worker threads
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return value


_VECTORS = _LRU(4096)
_GRIDS = _LRU(256)


class UndecodableImageError(ValueError):
    """The bytes are not an image Pillow can decode (truncated, unknown format, corrupt)."""


def _guarded(compute: Callable[[bytes], _T]) -> Callable[[bytes], _T]:
    def run(data: bytes) -> _T:
        try:
            return compute(data)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # Pillow reports bad input with several exception types; callers want one
            raise UndecodableImageError(f"cannot decode image: {exc}") from exc

    return run


_vector_guarded = _guarded(lambda data: array("d", _vector_uncached(data)))  # compact in the cache
_grid_guarded = _guarded(_grid_uncached)


def image_vector(data: bytes) -> list[float]:
    """The classification descriptor of an encoded image; raises UndecodableImageError."""
    return list(_VECTORS.get_or_compute(data, _vector_guarded))  # a fresh list: callers may mutate it


def cell_grid(data: bytes) -> CellGrid:
    """The detection cell grid of an encoded image; raises UndecodableImageError."""
    return _GRIDS.get_or_compute(data, _grid_guarded)
