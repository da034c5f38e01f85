"""Export formats: pure writers from a neutral description of exported images to label files.

The export job calls, per format::

    layout = FolderLayout(tag_names)                     # only for "folders": where images go
    path = image_relpath(fmt, image_id, ext, tags, layout=layout)   # where to put an image's bytes
    result = write_labels(fmt, images, kind, sink, options, tag_names=tag_names, layout=layout)
    write_model_json(sink, project, [(iteration, performance), ...], domains=...)

``images`` is an iterable of :class:`ExportedImage`, ``kind`` one of ``multiclass``/``multilabel``/
``detection`` (:func:`kind_of_project`), ``sink`` anything with ``write_text(relpath, text)``
(:class:`LocalSink`, :class:`MemorySink`). ``result.skipped`` lists the images a format cannot carry,
with the reason: the job reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .automl import write_automl
from .automl_schema import validate_line
from .coco import write_coco
from .folders import FolderLayout, safe_folder_name, write_folders
from .manifest import write_csv, write_csv_with_boxes
from .model import (
    KINDS,
    ExportedImage,
    FormatOptions,
    LocalSink,
    MemorySink,
    ProjectKind,
    RegionLabel,
    Sink,
    WriteResult,
    atomic_write_bytes,
    from_client_image,
    image_format,
    kind_of_project,
)
from .model_json import model_document, write_model_json
from .regions_json import write_regions_json
from .yolo import write_yolo, yolo_label_path

__all__ = [
    "FORMATS",
    "SUPPORTED_KINDS",
    "IMAGES_DIR",
    "KINDS",
    "ExportedImage",
    "RegionLabel",
    "FormatOptions",
    "ProjectKind",
    "Sink",
    "LocalSink",
    "MemorySink",
    "WriteResult",
    "FolderLayout",
    "safe_folder_name",
    "image_format",
    "from_client_image",
    "atomic_write_bytes",
    "image_relpath",
    "kind_of_project",
    "check_supported",
    "write_labels",
    "write_automl",
    "write_coco",
    "write_yolo",
    "write_csv",
    "write_regions_json",
    "write_folders",
    "write_model_json",
    "model_document",
    "validate_line",
    "yolo_label_path",
]

FORMATS = ("folders", "csv", "regions-json", "coco", "yolo", "automl")
IMAGES_DIR = "images"
_ALL: frozenset[str] = frozenset(KINDS)
SUPPORTED_KINDS: dict[str, frozenset[str]] = {
    "folders": _ALL, "csv": _ALL, "coco": _ALL, "automl": _ALL,
    "regions-json": frozenset({"detection"}), "yolo": frozenset({"detection"}),
}


def check_supported(fmt: str, kind: ProjectKind) -> None:
    """ValueError (one line, for the user) when ``fmt`` cannot carry a ``kind`` project; call it before
    downloading anything."""
    if fmt not in SUPPORTED_KINDS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    if kind not in SUPPORTED_KINDS[fmt]:
        raise ValueError(f"{fmt} holds boxes only: export a {kind} project as automl, coco, csv or folders")


def image_relpath(
    fmt: str, image_id: str, ext: str, tags: Sequence[str] = (), *, layout: FolderLayout | None = None
) -> str:
    """The posix path (relative to the export root) where the job writes an image's bytes: the image id
    as the file name (the service keeps no original name; deterministic, so an export resumes), under
    ``images/``, or for ``folders`` under its tag's folder (``layout`` from the project's tag names)."""
    name = f"{image_id}{ext}"
    if fmt == "folders":
        return (layout or FolderLayout(tags)).image_path(name, tags)
    return f"{IMAGES_DIR}/{name}"


def write_labels(
    fmt: str,
    images: Iterable[ExportedImage],
    kind: ProjectKind,
    sink: Sink,
    options: FormatOptions | None = None,
    *,
    tag_names: Sequence[str] = (),
    layout: FolderLayout | None = None,
) -> WriteResult:
    """Write the label files of ``fmt`` for ``images`` (already placed at ``image.file``)."""
    check_supported(fmt, kind)
    options = options or FormatOptions()
    if fmt == "automl":
        return write_automl(images, kind, sink, options)
    if fmt == "coco":
        return write_coco(images, kind, sink, options, tag_names=tag_names)
    if fmt == "yolo":
        return write_yolo(images, kind, sink, options, tag_names=tag_names)
    if fmt == "csv":
        return write_csv_with_boxes(images, kind, sink, options)
    if fmt == "regions-json":
        return write_regions_json(images, kind, sink, options)
    return write_folders(images, kind, sink, options, layout=layout, tag_names=tag_names)
