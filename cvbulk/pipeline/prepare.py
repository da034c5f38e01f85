"""Make one image acceptable to Custom Vision, or say why it cannot be.

The common case costs no decode: the header is parsed (``Image.open`` reads only that), the limits are
checked, a cheap end-marker test rules out the usual truncation, and the original bytes go through
untouched. Only an image that breaks a limit is decoded and fixed: converted to JPEG/PNG, moved to an 8-bit
mode, downscaled past the side limit, re-encoded down a fixed ladder until it fits the byte limit. Every fix
is a short phrase in ``PreparedImage.fixes``; what cannot be fixed is a :class:`Rejected` value with a
one-line reason. Output is deterministic (fixed encoder settings, no timestamps), so a re-sent image has
the same bytes and the service sees it as the duplicate it is.

Regions are normalised, so scaling and format changes leave them right; the pixel grid is never rotated
(EXIF orientation is kept as a tag, never applied), so nothing has to be remapped.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from PIL import Image, UnidentifiedImageError

from .labels import RegionLabel
from .status import Status

__all__ = [
    "ImageLimits",
    "TRAINING_LIMITS",
    "PREDICTION_LIMITS",
    "PreparedImage",
    "Rejected",
    "prepare_image",
]

# Our own pixel-count check runs on the header before any decode; Pillow's warning would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

MB = 1024 * 1024
#: Above this many pixels a header is treated as a decompression bomb (Pillow's own hard limit, ~179 MP:
#: a decode would take over half a gigabyte, and the service takes at most 10240x10240 anyway).
DEFAULT_MAX_PIXELS = 178_956_970


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What the service accepts (the service's limits page) plus our own guard against decompression bombs."""

    max_bytes: int
    max_side: int = 10240
    max_aspect: float = 25.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    formats: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF")
    max_regions: int | None = 300
    # Files larger than this are refused from their size alone, never read: no image worth fixing is
    # this big, and reading a 2 GB "photo" whole would only exhaust memory.
    max_file_bytes: int = 64 * MB


TRAINING_LIMITS = ImageLimits(max_bytes=6 * MB)
PREDICTION_LIMITS = ImageLimits(max_bytes=4 * MB, max_regions=None)


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The bytes to send. ``fixes`` is empty when they are the original file's bytes, untouched.

    With ``prepare_image(..., header_only=True)`` an image that passes through was never read whole:
    ``data`` is empty, ``sha256`` None, and ``size`` says how many bytes its file holds (read them again
    when they are sent). ``size`` is always the number of bytes to send.
    """

    data: bytes
    width: int
    height: int
    format: str
    sha256: str | None
    fixes: tuple[str, ...] = ()
    regions: tuple[RegionLabel, ...] = ()
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.data))

    @property
    def passed_through(self) -> bool:
        return not self.fixes

    def __repr__(self) -> str:  # never dump megabytes of image into a log
        digest = f"{self.sha256[:12]}..." if self.sha256 else "not computed"
        return (
            f"PreparedImage({self.format} {self.width}x{self.height}, {self.size} bytes, "
            f"sha256={digest}, fixes={self.fixes!r}, regions={len(self.regions)})"
        )


@dataclass(frozen=True, slots=True)
class Rejected:
    """An image that cannot be sent. ``code`` is stable for programs, ``reason`` one line for a person.

    Codes: empty, not_image, corrupt, bomb, aspect, too_large, too_many_regions, vanished, changed, archived, unreadable.
    ``status`` is what the journal records: rejected (final), or for a source's transient trouble "error".
    """

    code: str
    reason: str
    status: Status = Status.REJECTED


# Modes the service may refuse (or that JPEG/PNG cannot hold) and that we therefore convert.
_REFUSED_MODES = frozenset({"CMYK", "I", "F", "I;16", "I;16L", "I;16B", "I;16N", "LAB", "HSV", "RGBX", "RGBa", "La", "PA"})


# Camera JPEGs with a second picture (MPO: depth maps, previews) are still JPEG files to the service.
_FORMAT_ALIASES = {"MPO": "JPEG"}


def _format(img: Image.Image) -> str:
    fmt = img.format or "unknown"
    return _FORMAT_ALIASES.get(fmt, fmt)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _size_mb(n: int) -> str:
    if n < MB:
        return f"{n // 1024} KB"
    return f"{n / MB:g} MB" if n % MB == 0 else f"{n / MB:.1f} MB"


def _not_image_reason(data: bytes) -> str:
    head = data[:512]
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "not an image this tool can read (HEIC/HEIF): convert it to JPEG first"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "not an image: the file holds text"
        except UnicodeDecodeError:
            pass
    return "not an image: unrecognised content"


def _looks_complete(fmt: str, tail: bytes, size: int, bmp_size: bytes = b"") -> bool:
    """A cheap test for the usual truncation (a copy cut short): the format's end marker is in the file's
    last bytes (``tail``). A BMP declares its size (bytes 2..6, ``bmp_size``) instead; without them, False."""
    if fmt == "JPEG":
        return b"\xff\xd9" in tail  # EOI; FF is always stuffed in entropy data, so no false match there
    if fmt == "PNG":
        return b"IEND" in tail
    if fmt == "GIF":
        return tail.rstrip(b"\x00").endswith(b";")  # the trailer byte
    if fmt == "BMP" and len(bmp_size) == 4:
        declared = int.from_bytes(bmp_size, "little")
        return declared == 0 or size >= declared
    return False


def _decode_problem(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return f"truncated or corrupt image data ({text})"


def _has_alpha(img: Image.Image) -> bool:
    """True when the image has transparency that matters (a fully opaque alpha channel does not)."""
    if img.mode in ("RGBA", "LA"):
        return cast("tuple[int, int]", img.getchannel("A").getextrema())[0] < 255
    return "transparency" in img.info


def _to_8bit(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Move an image to a mode both the service and our encoders take; the phrase says what was done."""
    mode = img.mode
    if mode == "CMYK":
        return img.convert("RGB"), "converted CMYK to RGB"
    if mode.startswith("I;16"):
        # Scale 0..65535 down to 0..255 (a plain convert would clip everything above 255 to white).
        return img.convert("I").point(lambda v: v * (1 / 257)).convert("L"), "converted 16-bit grayscale to 8-bit"
    if mode in ("I", "F"):
        lo, hi = cast("tuple[float, float]", img.getextrema())
        span = (hi - lo) or 1
        scaled = img.point(lambda v: (v - lo) * (255 / span))
        what = "32-bit integer" if mode == "I" else "32-bit float"
        return scaled.convert("L"), f"converted {what} grayscale to 8-bit"
    if mode in ("LAB", "HSV", "RGBX", "YCbCr"):
        return img.convert("RGB"), f"converted {mode} to RGB"
    if mode in ("RGBa", "La", "PA"):
        return img.convert("RGBA"), f"converted {mode} to RGBA"
    return img, None


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not cost the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _encode(img: Image.Image, fmt: str, quality: int, orientation: int, icc: bytes | None) -> bytes:
    """Fixed encoder settings so the same pixels always give the same bytes."""
    buf = io.BytesIO()
    extra: dict[str, object] = {}
    if orientation != 1:
        # Keep the orientation tag alone: the pixel grid is not rotated, so regions stay where they were.
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    if icc:
        extra["icc_profile"] = icc
    if fmt == "JPEG":
        if img.mode not in ("RGB", "L"):
            img = img.convert("L" if img.mode in ("1", "LA") else "RGB")
        img.save(buf, "JPEG", quality=quality, optimize=True, progressive=False, subsampling="4:2:0", **extra)
    else:
        img.save(buf, "PNG", compress_level=6, **extra)
    return buf.getvalue()


def _resized(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    if img.mode in ("P", "1"):
        # Palette images resample only by nearest neighbour; go to full colour for a clean downscale.
        img = img.convert("RGBA" if "transparency" in img.info else "RGB" if img.mode == "P" else "L")
    if min(size[0] / img.width, size[1] / img.height) >= _MILD:
        # A mild downscale (10,600 px to 10,240): area averaging (box) anti-aliases it as well as Lanczos
        # and costs a third of its CPU (~100 ms less on a 5-megapixel photo).
        return img.resize(size, Image.Resampling.BOX)
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


#: Downscales to at least this fraction of a side use a short filter (see ``_resized``).
_MILD = 0.8


def _fit_side(w: int, h: int, max_side: int) -> tuple[int, int]:
    s = max_side / max(w, h)
    return (min(max_side, max(1, round(w * s))), min(max_side, max(1, round(h * s))))


#: What a header-only check reads from the front of a file: enough for the headers of nearly every photo
#: (EXIF with its thumbnail and an ICC profile included); a header that does not fit is read whole.
HEAD_BYTES = 128 * 1024
#: The first look at a larger file: the header of most photos (a cheaper read, below the allocator's mmap
#: threshold); a header that does not fit is read again up to HEAD_BYTES before the whole file is.
FIRST_LOOK = 32 * 1024
_TAIL_BYTES = 64


def prepare_image(
    path: str | os.PathLike[str] | None = None,
    *,
    data: bytes | None = None,
    limits: ImageLimits,
    regions: Iterable[RegionLabel] = (),
    header_only: bool = False,
) -> PreparedImage | Rejected:
    """Check one image against ``limits``; pass it through, fix it, or reject it (never raises for bad input).

    Blocking and CPU-bound: the pipeline runs it with ``anyio.to_thread.run_sync`` under a CapacityLimiter.
    ``data`` (when given) is used instead of reading ``path``. ``header_only`` (with ``path``): read only the
    file's header and its last bytes; an image that passes through is then neither read whole nor hashed
    (``data`` empty, ``sha256`` None, ``size`` set), and only an image that needs a fix is read whole.
    """
    regions = tuple(regions)
    if limits.max_regions is not None and len(regions) > limits.max_regions:
        return Rejected("too_many_regions", f"{len(regions)} regions, over the limit of {limits.max_regions} per image")
    if data is None:
        if path is None:
            raise TypeError("prepare_image() needs a path or data")
        read = _read_head if header_only else _read_whole
        try:
            got = read(path, limits)
        except FileNotFoundError:
            return Rejected("vanished", "the file vanished before it could be read")
        except IsADirectoryError:
            return Rejected("unreadable", "a folder, not a file")
        except PermissionError:
            return Rejected("unreadable", "cannot read the file: permission denied")
        except OSError as exc:
            return Rejected("unreadable", f"cannot read the file: {(exc.strerror or str(exc)).lower()}")
        if isinstance(got, Rejected):
            return got
        if isinstance(got, _Head):
            passed = _pass_from_head(got, limits, regions)
            if passed is None and len(got.head) < HEAD_BYTES:  # a header past the first look: a longer one
                try:
                    longer = _read_head(path, limits, HEAD_BYTES)
                except OSError:
                    longer = None
                if isinstance(longer, _Head):
                    passed = _pass_from_head(longer, limits, regions)
            if passed is not None:
                return passed
            return prepare_image(path, limits=limits, regions=regions)  # needs a fix (or a closer look): whole
        data = got
    if not data:
        return Rejected("empty", "empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow refuses such a header itself, before we see the size; its message holds the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        claimed = f"{int(found.group(1)) / 1e6:,.0f} megapixels" if found else "too many pixels"
        return Rejected(
            "bomb", f"decompression bomb: the header claims {claimed} (limit {limits.max_pixels / 1e6:.0f})"
        )
    except UnidentifiedImageError:
        return Rejected("not_image", _not_image_reason(data))
    except Exception as exc:  # any plugin may choke on a bad header; that is this file's outcome, not the run's
        return Rejected("corrupt", f"unreadable image header ({exc})".splitlines()[0])
    with img:
        return _check_or_fix(img, data, limits, regions)


@dataclass(frozen=True, slots=True)
class _Head:
    """The front and the end of a file, and its size: what a header-only check reads."""

    head: bytes
    tail: bytes
    size: int


def _too_large(size: int, limits: ImageLimits) -> Rejected | None:
    if size > limits.max_file_bytes:
        return Rejected(
            "too_large", f"{size / MB:,.0f} MB, far over the {limits.max_bytes / MB:g} MB limit (not read, not fixable)"
        )
    return None


def _read_whole(path: str | os.PathLike[str], limits: ImageLimits) -> bytes | Rejected:
    return _too_large(os.stat(path).st_size, limits) or Path(path).read_bytes()


def _read_head(
    path: str | os.PathLike[str], limits: ImageLimits, head_bytes: int = FIRST_LOOK
) -> _Head | bytes | Rejected:
    """One open: the size, the first ``head_bytes`` and the last few bytes (the whole file when it is no
    larger than HEAD_BYTES)."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        refused = _too_large(size, limits)
        if refused is not None:
            return refused
        if size <= HEAD_BYTES:
            return f.readall()
        head = f.read(head_bytes)
        f.seek(size - _TAIL_BYTES)
        tail = f.read(_TAIL_BYTES)
    if len(head) != head_bytes or len(tail) != _TAIL_BYTES:  # it changed under us: look at it whole
        return Path(path).read_bytes()
    return _Head(head, tail, size)


def _pass_from_head(found: _Head, limits: ImageLimits, regions: tuple[RegionLabel, ...]) -> PreparedImage | None:
    """The image, passed through, when its header alone shows it within every limit and complete; None
    when that takes a closer look (a header past HEAD_BYTES, a fix, a rejection, no end marker)."""
    try:
        with Image.open(io.BytesIO(found.head)) as img:
            w, h = img.size
            fmt = _format(img)
            ok = _within(img, fmt, found.size, limits) and _check_shape(w, h, limits) is None
    except Exception:  # a header cut short, or not an image at all: the whole file decides
        return None
    if not ok or not _looks_complete(fmt, found.tail, found.size, found.head[2:6]):
        return None
    return PreparedImage(b"", w, h, fmt, None, (), regions, size=found.size)


def _check_shape(w: int, h: int, limits: ImageLimits) -> Rejected | None:
    if w <= 0 or h <= 0:
        return Rejected("corrupt", f"image header gives an empty size {w}x{h}")
    if w * h > limits.max_pixels:
        return Rejected(
            "bomb",
            f"decompression bomb: the header claims {w}x{h} ({w * h / 1e6:.0f} megapixels, "
            f"limit {limits.max_pixels / 1e6:.0f})",
        )
    aspect = max(w, h) / min(w, h)
    if aspect > limits.max_aspect:
        return Rejected("aspect", f"aspect ratio {aspect:.1f}:1 ({w}x{h}) is over the {limits.max_aspect:g}:1 limit")
    return None


def _within(img: Image.Image, fmt: str, size: int, limits: ImageLimits) -> bool:
    """Format, side, bytes and mode all as the service takes them: the image can go as it is."""
    return (
        fmt in limits.formats
        and max(img.size) <= limits.max_side
        and size <= limits.max_bytes
        and img.mode not in _REFUSED_MODES
    )


def _check_or_fix(
    img: Image.Image, data: bytes, limits: ImageLimits, regions: tuple[RegionLabel, ...]
) -> PreparedImage | Rejected:
    w, h = img.size
    fmt = _format(img)
    refused = _check_shape(w, h, limits)
    if refused is not None:
        return refused
    if _within(img, fmt, len(data), limits):
        if not _looks_complete(fmt, data[-_TAIL_BYTES:], len(data), data[2:6]):
            # No end marker: only a full decode can tell trailing junk from a cut-off file.
            try:
                img.load()
            except Exception as exc:
                return Rejected("corrupt", _decode_problem(exc))
        return PreparedImage(data, w, h, fmt, _sha(data), (), regions)
    with FIX_PIXELS.hold(w * h):
        return _fix(img, data, limits, regions)


class PixelBudget:
    """How many source pixels the fixes of all worker threads may decode at once. A fix holds about 12
    bytes per pixel at its peak (the decoded picture, its resized copy, the encoder's buffers): two
    10,600 x 500 photos fixed together would take ~120 MB. A fix waits until its pixels fit; one larger
    than the whole budget runs alone. Header checks never wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._changed:
            while self._used and self._used + pixels > self.limit:
                self._changed.wait()
            self._used += pixels
        try:
            yield
        finally:
            with self._changed:
                self._used -= pixels
                self._changed.notify_all()


#: ~6 megapixels (~70 MB) of fixes at once, whatever the number of worker threads.
FIX_PIXELS = PixelBudget(6_000_000)


def _fix(
    img: Image.Image, data: bytes, limits: ImageLimits, regions: tuple[RegionLabel, ...]
) -> PreparedImage | Rejected:
    w, h = img.size
    src_fmt = _format(img)
    multi_picture = img.format == "MPO"
    src_mode = img.mode
    fixes: list[str] = []
    try:
        frames = getattr(img, "n_frames", 1)
    except Exception:
        frames = 1
    orientation = _orientation(img)
    icc = img.info.get("icc_profile")

    target = _fit_side(w, h, limits.max_side) if max(w, h) > limits.max_side else (w, h)
    if target != (w, h) and src_fmt == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers the target: far less work.
        img.draft(img.mode, target)
    try:
        img.load()
    except Exception as exc:
        return Rejected("corrupt", _decode_problem(exc))
    if frames > 1:
        fixes.append("kept the first picture of a multi-picture JPEG" if multi_picture
                     else f"flattened animated {src_fmt} to its first frame")

    frame, mode_fix = _to_8bit(img)
    if mode_fix:
        fixes.append(mode_fix)
    alpha = _has_alpha(frame)
    if not alpha and frame.mode in ("RGBA", "LA"):
        frame = frame.convert(frame.mode[:-1])  # an all-opaque alpha channel carries nothing

    too_big = len(data) > limits.max_bytes
    if src_fmt == "PNG" and (alpha or not too_big):
        out_fmt = "PNG"  # stay lossless unless the byte limit forces a lossy format
    elif src_fmt == "JPEG" or not alpha:
        out_fmt = "JPEG"
    else:
        out_fmt = "PNG"
    if out_fmt != src_fmt:
        fixes.append(f"converted {src_fmt} to {out_fmt}")
    # Keep a colour profile only where it still describes the pixels (a CMYK profile does not describe RGB).
    keep_icc = icc if src_mode in ("RGB", "RGBA", "P", "L", "LA") and not mode_fix else None

    if target != (w, h):
        fixes.append(f"downscaled {w}x{h} to {target[0]}x{target[1]}")
    base = _resized(frame, target)
    if base is not frame:  # the full-size picture goes before the encoder takes its buffers
        del frame
        if base is not img:
            img.close()

    # Deterministic ladder: a few qualities at full size, then smaller sizes estimated from the overshoot.
    qualities = (90, 85, 75, 65) if out_fmt == "JPEG" else (0,)
    cur = base
    out = b""
    quality = qualities[0]
    for quality in qualities:
        out = _encode(cur, out_fmt, quality, orientation, keep_icc)
        if len(out) <= limits.max_bytes:
            break
        too_big = True
    else:
        for _ in range(8):
            ratio = min(0.85, math.sqrt(limits.max_bytes / len(out)) * 0.95)
            size = (max(1, int(cur.width * ratio)), max(1, int(cur.height * ratio)))
            if min(size) < 16:
                break
            cur = _resized(base, size)
            out = _encode(cur, out_fmt, quality, orientation, keep_icc)
            if len(out) <= limits.max_bytes:
                break
        if len(out) > limits.max_bytes:
            return Rejected("too_large", f"cannot re-encode under {_size_mb(limits.max_bytes)} ({w}x{h}, {len(data)} bytes)")
    if too_big:
        how = f"at quality {quality}" if out_fmt == "JPEG" else "as PNG"
        phrase = f"re-encoded under {_size_mb(limits.max_bytes)} {how}"
        if cur.size != base.size:
            phrase += f", downscaled {base.width}x{base.height} to {cur.width}x{cur.height}"
        fixes.append(phrase)
    if not fixes:  # defensive: every re-encode must say why
        fixes.append(f"re-encoded as {out_fmt}")
    return PreparedImage(out, cur.width, cur.height, out_fmt, _sha(out), tuple(fixes), regions)
