"""The neutral description of an export that every writer takes, and the sink that writers write through.

Writers are pure: they never download, never look at the service; the export job hands them
:class:`ExportedImage` values (where it put each image and what the service says of it) and a
:class:`Sink` (local disk now, a blob container later: anything with ``write_text``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .._atomic import atomic_write_bytes
from ..labels import RegionLabel

__all__ = [
    "ProjectKind",
    "KINDS",
    "ExportedImage",
    "RegionLabel",
    "Sink",
    "LocalSink",
    "atomic_write_bytes",
    "MemorySink",
    "WriteResult",
    "FormatOptions",
    "image_format",
    "kind_of_project",
    "from_client_image",
]

ProjectKind = Literal["multiclass", "multilabel", "detection"]
KINDS: tuple[ProjectKind, ...] = ("multiclass", "multilabel", "detection")


@dataclass(frozen=True, slots=True)
class ExportedImage:
    """One exported image. ``file`` is the posix path of its bytes relative to the export root;
    ``regions`` are normalised (0..1) boxes; ``width``/``height`` in pixels (None when unknown)."""

    id: str
    file: str
    width: int | None = None
    height: int | None = None
    tags: tuple[str, ...] = ()
    regions: tuple[RegionLabel, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: str | None = None


@dataclass(frozen=True, slots=True)
class FormatOptions:
    """``image_url_prefix``: AutoML ``image_url`` = prefix + file (relative to the export root when None);
    ``validation_split``: the share of images (0..1, chosen by a hash of the image id) in the AutoML
    validation table; ``include_untagged``: write images without tags/boxes where the format can say so;
    ``negative_tags``: names of the project's Negative-type tags."""

    image_url_prefix: str | None = None
    validation_split: float = 0.0
    include_untagged: bool = False
    negative_tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split!r}")


@dataclass(slots=True)
class WriteResult:
    """What a writer did: the label files it wrote (relative to the export root), how many images it
    carried, the images it could not carry with the reason, and the labels of carried images it could not
    hold (``dropped``: image id, which and why; a detection image's tag without a box in a box-only file).
    The job reports both."""

    files: list[str] = field(default_factory=list)
    carried: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # images per table (AutoML's JSONL files)


class Sink(Protocol):
    def write_text(self, relpath: str, text: str) -> None:
        """Write ``text`` at ``relpath`` (posix, relative to the export root), replacing it whole."""
        ...


class LocalSink:
    """Files under a local folder, each written to a temporary name and renamed: a kill never leaves half
    a label file. Text is UTF-8; a non-UTF-8 file name kept as ``surrogateescape`` goes back to its bytes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def write_text(self, relpath: str, text: str) -> None:
        rel = posixpath.normpath(relpath)
        if rel.startswith("../") or rel == ".." or posixpath.isabs(rel):
            raise ValueError(f"{relpath!r} is outside the export root")
        atomic_write_bytes(self.root.joinpath(*rel.split("/")), text.encode("utf-8", "surrogateescape"))


class MemorySink:
    """Files in a dict: tests, and a writer whose output goes somewhere else next."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def write_text(self, relpath: str, text: str) -> None:
        self.files[posixpath.normpath(relpath)] = text


_FORMATS = {".jpg": "jpg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".gif": "gif", ".tif": "tif",
            ".tiff": "tiff", ".webp": "webp", ".jpe": "jpe", ".jfif": "jfif"}


def image_format(file: str) -> str | None:
    """``jpg``, ``png``, ... from the file's extension; None when it has no known one."""
    return _FORMATS.get(posixpath.splitext(file)[1].lower())


def kind_of_project(domain_type: str | None, classification_type: str | None) -> ProjectKind:
    """The kind from a project's domain type (``ObjectDetection``/``Classification``) and settings."""
    if (domain_type or "").lower() == "objectdetection":
        return "detection"
    return "multilabel" if (classification_type or "").lower() == "multilabel" else "multiclass"


def from_client_image(image: Any, file: str) -> ExportedImage:
    """An :class:`ExportedImage` from a ``cvbulk.client.Image`` (as GetImages / GetImagesByIds return it)
    whose bytes the job wrote at ``file``. Region tags count as the image's tags (a detection image's tags
    are its boxes')."""
    regions = tuple(
        RegionLabel(r.tag_name or "", float(r.left or 0.0), float(r.top or 0.0), float(r.width or 0.0),
                    float(r.height or 0.0))
        for r in (image.regions or ())
    )
    tags = tuple(dict.fromkeys([*(t.tag_name or "" for t in (image.tags or ())), *(r.tag for r in regions)]))
    return ExportedImage(
        id=image.id or "", file=file, width=image.width, height=image.height, tags=tags, regions=regions,
        metadata=dict(image.metadata or {}), created=image.created,
    )
