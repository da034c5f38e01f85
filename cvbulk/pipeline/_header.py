"""The header check: is an image fine to send as it is, judged from its first bytes and its size alone?

A blob that passes can go to the service as a URL (the service fetches it; no byte passes through cvbulk).
One that fails for good (not an image, a bomb, a wild aspect ratio) is rejected from its header; one that
needs a fix (too large, too many pixels a side, a format or mode the service refuses) or whose header does not
fit in the bytes read must be downloaded and prepared whole (``prepare_image``).
"""

from __future__ import annotations

import io
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
