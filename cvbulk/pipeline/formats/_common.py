"""Small helpers the writers share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from ..labels import RegionLabel, check_tag, make_region
from .model import ExportedImage

__all__ = ["dumps", "valid_labels", "all_tags", "in_validation", "unboxed", "in_the_csv"]


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 text kept readable; NaN is an error, never written."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def valid_labels(image: ExportedImage) -> tuple[tuple[str, ...], tuple[RegionLabel, ...]] | str:
    """The image's tags and regions after the one validation the readers apply, or why they are unusable
    (a writer never writes a line its reader would reject)."""
    for t in image.tags:
        reason = check_tag(t)
        if reason is not None:
            return reason
    regions: list[RegionLabel] = []
    for r in image.regions:
        got = make_region(r.tag, r.left, r.top, r.width, r.height)
        if isinstance(got, str):
            return got
        regions.append(got)
    tags = tuple(dict.fromkeys([*image.tags, *(r.tag for r in regions)]))
    return tags, tuple(regions)


def unboxed(image_id: str, tags: tuple[str, ...], regions: tuple[RegionLabel, ...], file: str) -> tuple[str, str] | None:
    """A detection image's tags that no box carries (the service takes a tag without a region on a detection
    image), as a ``WriteResult.dropped`` entry for the box-only ``file``; None when every tag has a box."""
    boxed = {r.tag for r in regions}
    loose = [t for t in tags if t not in boxed]
    if not loose:
        return None
    names = ", ".join(repr(t) for t in loose)
    return image_id, f"tag {names} without a box: not in {file}, which holds boxes only"


def in_the_csv(dropped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``dropped`` entries of a regions.json written beside labels.csv, which does carry those tags."""
    return [(image_id, f"{why} (labels.csv has it)") for image_id, why in dropped]


def all_tags(images: Iterable[ExportedImage], tag_names: Iterable[str]) -> list[str]:
    names = set(tag_names)
    for im in images:
        names.update(im.tags)
        names.update(r.tag for r in im.regions)
    return sorted(n for n in names if check_tag(n) is None)


def in_validation(image_id: str, split: float) -> bool:
    """Deterministic: the same image lands on the same side on every run and every machine."""
    if split <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(image_id.encode("utf-8", "surrogateescape")).digest()[:8], "big")
    return h / 2**64 < split
