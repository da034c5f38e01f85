"""``folders``: one folder per tag (``OUT/<folder>/<file>``), the layout ``cvbulk upload --labels folders``
reads (and the Ultralytics classification layout).

A folder name is the tag itself when the tag is a safe name; otherwise (a character a file system refuses,
a reserved Windows name, leading dot, trailing dot or space, longer than 255 bytes, or two tags that would
share a folder, also by case on a case-insensitive disk) it is the tag made safe plus ``~`` and 8 hex
digits of the tag's hash: unique, the same on every run, cut on a character boundary to 255 bytes.
``cvbulk-folders.json`` maps every such folder back to its exact tag (``FolderLabels`` reads it), and
``labels.csv`` lists every image with ALL its tags (an image with several tags sits in the folder of the
first by name; an untagged image directly under OUT). A detection project's boxes go to ``regions.json``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Sequence

from ..labels.folders import FOLDER_MAP_FILE, FOLDER_MAP_KEY
from ._common import dumps
from .manifest import CSV_FILE, write_csv_with_boxes
from .model import ExportedImage, FormatOptions, ProjectKind, Sink, WriteResult
from .model_json import MODEL_FILE
from .regions_json import REGIONS_FILE

__all__ = ["FolderLayout", "safe_folder_name", "write_folders", "MAX_NAME_BYTES"]

MAX_NAME_BYTES = 255
_UNSAFE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f\ud800-\udfff]')
# the files the export writes beside the tag folders (any case: a case-insensitive disk is common)
_OWN_FILES = {n.casefold() for n in (FOLDER_MAP_FILE, CSV_FILE, REGIONS_FILE, MODEL_FILE)}
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _suffix(tag: str, digits: int = 8) -> str:
    return "~" + hashlib.sha256(tag.encode("utf-8", "surrogateescape")).hexdigest()[:digits]


def _sanitised(tag: str) -> str:
    s = _UNSAFE.sub("_", tag).strip().rstrip(". ")
    if s.startswith("."):
        s = "_" + s[1:]  # a hidden folder is skipped by the scan
    if not s:
        s = "tag"
    if s.split(".")[0].rstrip().lower() in _RESERVED:
        s = "_" + s
    return s


def safe_folder_name(tag: str, *, force_suffix: bool = False, digits: int = 8) -> str:
    base = _sanitised(tag)
    if base == tag and not force_suffix and len(tag.encode("utf-8")) <= MAX_NAME_BYTES and tag.casefold() not in _OWN_FILES:
        return tag
    sfx = _suffix(tag, digits)
    return _cut(base, MAX_NAME_BYTES - len(sfx)) + sfx


class FolderLayout:
    """Folder names for a project's tag set, decided once (so the job can place images before any label
    file is written) and unique among them, case-insensitively."""

    def __init__(self, tag_names: Iterable[str]) -> None:
        tags = sorted(set(tag_names))
        names = {t: safe_folder_name(t) for t in tags}
        for digits in (8, 16, 64):
            groups: dict[str, list[str]] = {}
            for t, n in names.items():
                groups.setdefault(n.casefold(), []).append(t)
            clashes = [t for g in groups.values() if len(g) > 1 for t in g]
            if not clashes:
                break
            for t in clashes:
                names[t] = safe_folder_name(t, force_suffix=True, digits=digits)
        self.folders: dict[str, str] = names

    def folder(self, tag: str) -> str:
        found = self.folders.get(tag)
        return found if found is not None else safe_folder_name(tag, force_suffix=_sanitised(tag) != tag)

    def image_path(self, file_name: str, tags: Sequence[str]) -> str:
        """Where an image with these tags goes: the folder of its first tag by name, or OUT itself."""
        name = posixpath.basename(file_name)
        return f"{self.folder(sorted(tags)[0])}/{name}" if tags else name

    def mapping(self) -> dict[str, str]:
        """folder -> tag, for the folders that are not the tag itself."""
        return {f: t for t, f in self.folders.items() if f != t}


def write_folders(
    images: Iterable[ExportedImage],
    kind: ProjectKind,
    sink: Sink,
    options: FormatOptions | None = None,
    *,
    layout: FolderLayout | None = None,
    tag_names: Sequence[str] = (),
) -> WriteResult:
    """The label files of the folders layout (the images are already where ``layout.image_path`` said)."""
    images = list(images)
    layout = layout or FolderLayout([*tag_names, *(t for im in images for t in im.tags)])
    mapping = {**layout.mapping()}
    for im in images:  # a tag the layout did not know when the images were placed
        for t in im.tags:
            f = layout.folder(t)
            if f != t:
                mapping[f] = t
    sink.write_text(FOLDER_MAP_FILE, "{" + f'"{FOLDER_MAP_KEY}": {dumps(dict(sorted(mapping.items())))}' + "}\n")
    result = write_csv_with_boxes(images, kind, sink, options)
    result.files.insert(0, FOLDER_MAP_FILE)
    return result
