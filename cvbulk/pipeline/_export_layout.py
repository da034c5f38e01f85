"""Where an exported image goes on disk and the label files that let ``cvbulk upload`` read it back.

Pure functions (no I/O besides the label writers, which run in a worker thread):

* ``folders``: ``OUT/<tag>/<image id>.<ext>``; an untagged image sits directly under OUT (``cvbulk upload
  --untagged`` puts it back untagged). An image with several tags goes under the folder of its first tag
  (by name) and, since one folder cannot carry several tags, ``OUT/labels.csv`` is written as well,
  listing every image with all its tags (``cvbulk upload OUT --labels OUT/labels.csv``).
* ``csv``: ``OUT/images/<id>.<ext>`` and ``OUT/labels.csv`` (``path,tags``, tags joined by ``;``).
* ``regions-json``: ``OUT/images/<id>.<ext>`` and ``OUT/regions.json`` in the shape of ``od_regions.json``.
* ``coco``: ``OUT/images/<id>.<ext>`` and ``OUT/coco.json`` (COCO instances, pixel boxes).

File names are the service's image id (the service keeps no original file name): deterministic, unique,
and the same on every run, which is what makes an export resumable.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "IMAGES_DIR",
    "LABEL_FILES",
    "FOLDERS_MANIFEST",
    "sniff_extension",
    "image_relpath",
    "folder_carries_labels",
    "label_file_for",
    "write_label_file",
    "atomic_write_bytes",
    "iter_rows",
]

FORMATS = ("folders", "csv", "regions-json", "coco")
IMAGES_DIR = "images"
LABEL_FILES = {"csv": "labels.csv", "regions-json": "regions.json", "coco": "coco.json"}
FOLDERS_MANIFEST = "labels.csv"

# A tag name that cannot be a folder name as it is (FolderLabels reads the folder name back verbatim).
_UNSAFE_FOLDER = re.compile(r'[/\\:*?"<>|\x00-\x1f]')
_SLUG = re.compile(r"[^A-Za-z0-9._ -]+")


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


def _safe_folder(tag: str) -> bool:
    return bool(tag.strip()) and tag == tag.strip() and not tag.startswith(".") and not _UNSAFE_FOLDER.search(tag)


def _slug_folder(tag: str) -> str:
    return _SLUG.sub("_", tag).strip(" ._") or "tag"


def folder_carries_labels(tags: Sequence[str]) -> bool:
    """True when the folder layout alone gives the image its labels back (zero or one safe tag)."""
    return len(tags) == 0 or (len(tags) == 1 and _safe_folder(tags[0]))


def image_relpath(fmt: str, image_id: str, tags: Sequence[str], ext: str) -> str:
    """The posix path of an exported image relative to OUT."""
    name = f"{image_id}{ext}"
    if fmt != "folders":
        return f"{IMAGES_DIR}/{name}"
    if not tags:
        return name
    first = sorted(tags)[0]
    return f"{first if _safe_folder(first) else _slug_folder(first)}/{name}"


def label_file_for(fmt: str) -> str | None:
    return LABEL_FILES.get(fmt)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename: a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _AtomicText:
    """A text file written to a temporary name and renamed into place on success."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def __enter__(self) -> io.TextIOBase:
        return self.fh

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.fh.close()
        if exc_type is None:
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


# One exported image as the label writers see it: (relpath, tags, regions, width, height), where regions
# are (tag, left, top, width, height) normalised.
Row = tuple[str, Sequence[str], Sequence[Sequence[Any]], "int | None", "int | None"]


def write_label_file(
    fmt: str, out_dir: Path, rows_of: Callable[[], Iterable[Row]], tag_names: Sequence[str]
) -> Path | None:
    """Write the label file of ``fmt`` from the exported rows, which ``rows_of()`` yields afresh on each
    call (streamed, read twice for COCO: memory stays flat however many images)."""
    rows = rows_of()
    if fmt in ("csv", "folders"):
        path = out_dir / (LABEL_FILES["csv"] if fmt == "csv" else FOLDERS_MANIFEST)
        with _AtomicText(path) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["path", "tags"])
            for relpath, tags, _, _, _ in rows:
                writer.writerow([relpath, ";".join(tags)])
        return path
    if fmt == "regions-json":
        path = out_dir / LABEL_FILES[fmt]
        with _AtomicText(path) as fh:
            fh.write("{")
            first = True
            for relpath, _, regions, _, _ in rows:
                boxes = [
                    {"tag": r[0], "left": r[1], "top": r[2], "width": r[3], "height": r[4]} for r in regions
                ]
                fh.write(("\n  " if first else ",\n  ") + json.dumps(relpath) + ": " + json.dumps(boxes))
                first = False
            fh.write("\n}\n")
        return path
    if fmt == "coco":
        return _write_coco(out_dir / LABEL_FILES[fmt], rows_of, tag_names)
    raise ValueError(f"unknown export format {fmt!r}")


def _write_coco(path: Path, rows_of: Callable[[], Iterable[Row]], tag_names: Sequence[str]) -> Path:
    # Categories are every tag of the project, so a tag without a box is still a tag on the way back.
    categories = {name: i for i, name in enumerate(sorted(set(tag_names)), 1)}
    for _, _, regions, _, _ in rows_of():
        for r in regions:
            categories.setdefault(r[0], len(categories) + 1)
    with _AtomicText(path) as fh:
        fh.write('{\n"info": {"description": "exported by cvbulk"},\n"images": [')
        sep = "\n  "
        for image_id, (relpath, _, _, width, height) in enumerate(rows_of(), 1):
            entry = {"id": image_id, "file_name": relpath, "width": int(width or 0), "height": int(height or 0)}
            fh.write(sep + json.dumps(entry))
            sep = ",\n  "
        fh.write('\n],\n"annotations": [')
        sep = "\n  "
        ann_id = 0
        for image_id, (_, _, regions, width, height) in enumerate(rows_of(), 1):
            w, h = int(width or 0), int(height or 0)
            for tag, left, top, bw, bh in regions:
                ann_id += 1
                box = [left * w, top * h, bw * w, bh * h]
                fh.write(sep + json.dumps({
                    "id": ann_id, "image_id": image_id, "category_id": categories[tag], "bbox": box,
                    "area": box[2] * box[3], "iscrowd": 0,
                }))
                sep = ",\n  "
        fh.write('\n],\n"categories": [')
        cats = [json.dumps({"id": i, "name": n, "supercategory": ""}) for n, i in categories.items()]
        fh.write(",".join("\n  " + c for c in cats))
        fh.write("\n]\n}\n")
    return path


def iter_rows(entries: Iterator[Any]) -> Iterator[Row]:
    """Label rows from journal entries whose ``extra`` holds what the export recorded."""
    for e in entries:
        x = e.extra or {}
        yield (x.get("file") or e.key, x.get("tags") or [], x.get("regions") or [], x.get("width"), x.get("height"))
