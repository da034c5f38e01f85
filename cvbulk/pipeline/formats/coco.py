"""``coco``: one COCO instances JSON (``coco.json``).

* ``images``: ``id`` (1..N), ``file_name`` (relative to the export root), ``width``, ``height`` (pixels),
  ``date_captured`` (the service's created date), and two keys COCO tools ignore: ``cvbulk_id`` (the
  Custom Vision image id) and ``metadata`` (the image's metadata, when it has any).
* ``categories``: every tag of the project (a tag without an image is still a tag), ids 1..n by name;
  a Negative-type tag has ``supercategory: "Negative"``.
* ``annotations``: detection: one per region, pixel ``bbox`` ``[x, y, w, h]``, ``area``, ``iscrowd: 0``.
  Classification: one per image tag WITHOUT ``bbox`` (COCO has no image-level label; ``cvbulk upload``
  reads such an annotation as a tag). An untagged image is listed with no annotation.

A detection image whose size is unknown cannot have pixel boxes: it is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._common import all_tags, dumps, unboxed, valid_labels
from .model import ExportedImage, FormatOptions, ProjectKind, Sink, WriteResult

__all__ = ["write_coco", "COCO_FILE"]

COCO_FILE = "coco.json"


def write_coco(
    images: Iterable[ExportedImage],
    kind: ProjectKind,
    sink: Sink,
    options: FormatOptions | None = None,
    *,
    tag_names: Sequence[str] = (),
) -> WriteResult:
    options = options or FormatOptions()
    images = list(images)
    result = WriteResult()
    names = all_tags(images, tag_names)
    category = {n: i for i, n in enumerate(names, 1)}
    entries: list[str] = []
    anns: list[str] = []
    for image in images:
        got = valid_labels(image)
        if isinstance(got, str):
            result.skipped.append((image.id, got))
            continue
        tags, regions = got
        w, h = image.width or 0, image.height or 0
        if kind == "detection" and regions and (w <= 0 or h <= 0):
            result.skipped.append((image.id, "the image's size is unknown: no pixel boxes can be written"))
            continue
        number = len(entries) + 1
        entry: dict = {"id": number, "file_name": image.file, "width": w, "height": h}
        if image.created:
            entry["date_captured"] = image.created
        entry["cvbulk_id"] = image.id
        if image.metadata:
            entry["metadata"] = dict(image.metadata)
        entries.append(dumps(entry))
        if kind == "detection":
            loose = unboxed(image.id, tags, regions, COCO_FILE)
            if loose is not None:  # an annotation without bbox would break COCO tools' detection readers
                result.dropped.append(loose)
            for r in regions:
                box = [r.left * w, r.top * h, r.width * w, r.height * h]
                anns.append(dumps({"id": len(anns) + 1, "image_id": number, "category_id": category[r.tag],
                                   "bbox": box, "area": box[2] * box[3], "iscrowd": 0}))
        else:
            for t in tags:
                anns.append(dumps({"id": len(anns) + 1, "image_id": number, "category_id": category[t]}))
        result.carried += 1
    cats = [
        dumps({"id": i, "name": n, "supercategory": "Negative" if n in options.negative_tags else ""})
        for n, i in category.items()
    ]
    text = (
        "{\n" + f'"info": {dumps({"description": "exported by cvbulk", "cvbulk_kind": kind})},\n'
        + '"images": [' + ",".join("\n  " + e for e in entries) + "\n],\n"
        + '"annotations": [' + ",".join("\n  " + a for a in anns) + "\n],\n"
        + '"categories": [' + ",".join("\n  " + c for c in cats) + "\n]\n}\n"
    )
    sink.write_text(COCO_FILE, text)
    result.files.append(COCO_FILE)
    return result
