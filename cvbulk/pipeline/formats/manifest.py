"""``csv``: ``labels.csv`` with ``path,tags,metadata``.

``path`` is relative to the export root; ``tags`` follows THE separator rule of
:mod:`cvbulk.pipeline.labels.tagcell` (``;`` between tags, double quotes around a tag with ``;``, ``"`` or
surrounding spaces), so every tag reads back exactly; ``metadata`` is the image's metadata as a JSON object
(empty when it has none; ``cvbulk upload`` ignores the column). The file is quoted by the CSV rules on top
(a cell with ``,``, ``"`` or a line break is quoted). An untagged image is a row with an empty ``tags``
cell. A CSV holds no boxes: a detection project's regions travel in coco / yolo / automl / regions-json.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from ..labels.tagcell import encode_tags
from ._common import dumps, in_the_csv, valid_labels
from .model import ExportedImage, FormatOptions, ProjectKind, Sink, WriteResult
from .regions_json import write_regions_json

__all__ = ["write_csv", "write_csv_with_boxes", "CSV_FILE", "manifest_text"]

CSV_FILE = "labels.csv"


def manifest_text(rows: Iterable[tuple[str, tuple[str, ...], dict]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "tags", "metadata"])
    for path, tags, metadata in rows:
        writer.writerow([path, encode_tags(tags), dumps(metadata) if metadata else ""])
    return buf.getvalue()


def write_csv(
    images: Iterable[ExportedImage], kind: ProjectKind, sink: Sink, options: FormatOptions | None = None,
    *, name: str = CSV_FILE,
) -> WriteResult:
    result = WriteResult()
    rows: list[tuple[str, tuple[str, ...], dict]] = []
    for image in images:
        got = valid_labels(image)
        if isinstance(got, str):
            result.skipped.append((image.id, got))
            continue
        rows.append((image.file, got[0], dict(image.metadata)))
        result.carried += 1
    sink.write_text(name, manifest_text(rows))
    result.files.append(name)
    return result


def write_csv_with_boxes(
    images: Iterable[ExportedImage], kind: ProjectKind, sink: Sink, options: FormatOptions | None = None
) -> WriteResult:
    """labels.csv, and for a detection project regions.json beside it (a CSV holds no boxes); the tags a box-only
    regions.json cannot hold are reported as in labels.csv."""
    if kind != "detection":
        return write_csv(images, kind, sink, options)
    images = list(images)
    result = write_csv(images, kind, sink, options)
    boxes = write_regions_json(images, kind, sink, options)
    result.files += boxes.files
    result.dropped += in_the_csv(boxes.dropped)
    return result
