"""``regions-json``: ``regions.json`` in the shape of the quickstart's ``od_regions.json``:
``{file: [{tag, left, top, width, height}, ...]}`` with normalised boxes. Every image is a key (an image
without boxes has ``[]``). It holds boxes only: detection projects."""

from __future__ import annotations

from collections.abc import Iterable

from ._common import dumps, unboxed, valid_labels
from .model import ExportedImage, FormatOptions, ProjectKind, Sink, WriteResult

__all__ = ["write_regions_json", "REGIONS_FILE"]

REGIONS_FILE = "regions.json"


def write_regions_json(
    images: Iterable[ExportedImage], kind: ProjectKind, sink: Sink, options: FormatOptions | None = None
) -> WriteResult:
    if kind != "detection":
        raise ValueError("regions-json holds boxes only: export a classification project as csv, folders or automl")
    result = WriteResult()
    parts: list[str] = []
    for image in images:
        got = valid_labels(image)
        if isinstance(got, str):
            result.skipped.append((image.id, got))
            continue
        loose = unboxed(image.id, got[0], got[1], REGIONS_FILE)
        if loose is not None:
            result.dropped.append(loose)
        boxes = [{"tag": r.tag, "left": r.left, "top": r.top, "width": r.width, "height": r.height} for r in got[1]]
        parts.append(f"  {dumps(image.file)}: {dumps(boxes)}")
        result.carried += 1
    sink.write_text(REGIONS_FILE, "{\n" + ",\n".join(parts) + "\n}\n")
    result.files.append(REGIONS_FILE)
    return result
