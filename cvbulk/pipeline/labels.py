"""Label sources: where an image's tags (and, for detection, its regions) come from.

``open_label_source(spec, root)`` gives one of:

* ``"folders"``: the first folder level under ROOT is the tag (``Images/Hemlock/x.jpg`` -> ``Hemlock``);
  deeper folders are allowed; files directly under ROOT have no label.
* a CSV manifest (``path,tags``): several tags per image separated by ``;``, ``|`` or ``,`` (inside a quoted
  cell); paths relative to ROOT or absolute under it; a UTF-8 BOM is tolerated; rows naming the same path merge.
* a regions JSON in the shape of the quickstart's ``od_regions.json``: ``{file: [{tag, left, top, width,
  height}, ...]}``, normalised coordinates; keys are relative paths or bare file names.
* a COCO instances JSON: pixel boxes ``[x, y, w, h]`` become normalised regions, clamped to the image.

A malformed label file is a configuration error: :class:`LabelFileError` (a ``ValueError``) names the file
and the line or entry at fault, and stops the run before anything is sent.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "RegionLabel",
    "Labels",
    "LabelSource",
    "LabelFileError",
    "FolderLabels",
    "CsvLabels",
    "RegionsJsonLabels",
    "CocoLabels",
    "open_label_source",
]


class LabelFileError(ValueError):
    """A label file that cannot be used; the message is one line naming the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class RegionLabel:
    """A box around one object, in coordinates normalised to the image (0..1)."""

    tag: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Labels:
    """The labels of one image: its tags and, for object detection, its regions (whose tags are in ``tags``)."""

    tags: tuple[str, ...]
    regions: tuple[RegionLabel, ...] = ()


@runtime_checkable
class LabelSource(Protocol):
    has_regions: bool

    def labels_for(self, relpath: str) -> Labels | None:
        """The labels of the file at ``relpath`` (posix, relative to ROOT); None when the source has none."""
        ...

    def tag_names(self) -> list[str]:
        """Every tag the source can produce, sorted."""
        ...


def _norm_rel(p: str) -> str:
    """One spelling per path: forward slashes, no ``./``, no doubled separators."""
    p = p.strip().replace("\\", "/")
    if not p:
        return ""
    p = posixpath.normpath(p)  # also drops a leading "./"
    return "" if p == "." else p


class FolderLabels:
    """The first folder level under ROOT is the tag."""

    has_regions = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._cache: dict[str, Labels] = {}  # one Labels per tag, shared by every file under it

    def labels_for(self, relpath: str) -> Labels | None:
        rel = _norm_rel(relpath)
        head, sep, _ = rel.partition("/")
        if not sep or not head:
            return None  # a file directly under ROOT has no folder to name it
        labels = self._cache.get(head)
        if labels is None:
            labels = self._cache[head] = Labels((head,))
        return labels

    def tag_names(self) -> list[str]:
        # Only the first level is read: a tag exists as soon as its folder does, whatever it holds.
        try:
            with os.scandir(self.root) as it:
                return sorted(
                    e.name for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=True)
                )
        except OSError:
            return []


class _MappedLabels:
    """A source backed by a dict of normalised path -> Labels, with a fallback on the bare file name."""

    has_regions = False

    def __init__(self) -> None:
        self._by_path: dict[str, Labels] = {}
        self._by_name: dict[str, Labels] = {}
        self._tags: set[str] = set()

    def labels_for(self, relpath: str) -> Labels | None:
        rel = _norm_rel(relpath)
        found = self._by_path.get(rel)
        if found is None and self._by_name:
            found = self._by_name.get(posixpath.basename(rel))
        return found

    def tag_names(self) -> list[str]:
        return sorted(self._tags)


_TAG_SEPARATORS = re.compile(r"[;|,]")
_PATH_COLUMNS = ("path", "file", "filename", "file_name", "image")
_TAG_COLUMNS = ("tags", "tag", "labels", "label")


class CsvLabels(_MappedLabels):
    """A ``path,tags`` manifest; any other column is ignored."""

    def __init__(self, path: str | os.PathLike[str], root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.root = Path(root)
        name = self.path.name
        root_abs = os.path.abspath(self.root)
        merged: dict[str, list[str]] = {}
        tagsets: dict[tuple[str, ...], Labels] = {}  # share one Labels per tag set: a million rows, few sets
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    raise LabelFileError(f"{name}: the file is empty; expected a header 'path,tags'")
                cols = [h.strip().lower() for h in header]
                p_col = next((cols.index(c) for c in _PATH_COLUMNS if c in cols), None)
                t_col = next((cols.index(c) for c in _TAG_COLUMNS if c in cols), None)
                if p_col is None or t_col is None:
                    raise LabelFileError(
                        f"{name}: line 1: expected a header with 'path' and 'tags' columns, found {header!r}"
                    )
                for row in reader:
                    if not row or all(not c.strip() for c in row):
                        continue
                    line = reader.line_num
                    if len(row) <= p_col or not row[p_col].strip():
                        raise LabelFileError(f"{name}: line {line}: no path in this row")
                    raw_path = row[p_col].strip()
                    rel = self._relative(raw_path, root_abs)
                    if rel is None:
                        raise LabelFileError(f"{name}: line {line}: path {raw_path!r} is outside ROOT {self.root}")
                    cell = row[t_col] if len(row) > t_col else ""
                    tags = [t.strip() for t in _TAG_SEPARATORS.split(cell)]
                    acc = merged.setdefault(rel, [])
                    for t in tags:
                        if t and t not in acc:
                            acc.append(t)
        except FileNotFoundError:
            raise LabelFileError(f"{name}: label file not found") from None
        except UnicodeDecodeError as exc:
            raise LabelFileError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise LabelFileError(f"{name}: malformed CSV: {exc}") from None
        except OSError as exc:
            raise LabelFileError(f"{name}: cannot read the label file: {exc.strerror}") from None
        for rel, tag_list in merged.items():
            key = tuple(tag_list)
            labels = tagsets.get(key)
            if labels is None:
                labels = tagsets[key] = Labels(key)
                self._tags.update(key)
            self._by_path[rel] = labels

    @staticmethod
    def _relative(raw: str, root_abs: str) -> str | None:
        p = raw.replace("\\", "/")
        if os.path.isabs(raw) or p.startswith("/"):
            ap = os.path.abspath(raw)
            if ap != root_abs and not ap.startswith(root_abs.rstrip(os.sep) + os.sep):
                return None
            return _norm_rel(os.path.relpath(ap, root_abs).replace(os.sep, "/"))
        rel = _norm_rel(p)
        if rel.startswith("../") or rel == "..":
            return None
        return rel


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is not a number ({value!r})")
    return float(value)


def _clamp01(v: float) -> float:
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def _box(tag: str, left: float, top: float, width: float, height: float) -> RegionLabel | None:
    """Clamp a normalised box to the image; None when nothing of it is left inside."""
    x0, y0 = _clamp01(left), _clamp01(top)
    x1, y1 = _clamp01(left + width), _clamp01(top + height)
    if x1 <= x0 or y1 <= y0:
        return None
    return RegionLabel(tag, x0, y0, x1 - x0, y1 - y0)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise LabelFileError(f"{path.name}: label file not found") from None
    except json.JSONDecodeError as exc:
        raise LabelFileError(f"{path.name}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise LabelFileError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise LabelFileError(f"{path.name}: cannot read the label file: {exc.strerror}") from None


class _RegionSource(_MappedLabels):
    has_regions = True

    def _add(self, key: str, regions: list[RegionLabel]) -> None:
        rel = _norm_rel(key)
        tags = tuple(dict.fromkeys(r.tag for r in regions))
        self._tags.update(tags)
        labels = Labels(tags, tuple(regions))
        self._by_path[rel] = labels
        if "/" not in rel:
            self._by_name[rel] = labels  # a bare file name matches that name in any folder


class RegionsJsonLabels(_RegionSource):
    """``{file: [{tag, left, top, width, height}, ...]}`` with normalised coordinates (od_regions.json)."""

    def __init__(self, path: str | os.PathLike[str], data: Any | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        name = self.path.name
        data = _load_json(self.path) if data is None else data
        if not isinstance(data, Mapping):
            raise LabelFileError(f"{name}: expected an object mapping file names to lists of regions")
        for key, items in data.items():
            if not isinstance(items, list):
                raise LabelFileError(f"{name}: entry {key!r}: expected a list of regions")
            regions: list[RegionLabel] = []
            for i, item in enumerate(items, 1):
                where = f"{name}: entry {key!r} region {i}"
                if not isinstance(item, Mapping):
                    raise LabelFileError(f"{where}: expected an object with tag, left, top, width, height")
                try:
                    tag = item["tag"]
                    if not isinstance(tag, str) or not tag.strip():
                        raise ValueError(f"'tag' must be a non-empty string ({tag!r})")
                    vals = [_num(item[k], repr(k)) for k in ("left", "top", "width", "height")]
                except KeyError as exc:
                    raise LabelFileError(f"{where}: missing {exc.args[0]!r}") from None
                except ValueError as exc:
                    raise LabelFileError(f"{where}: {exc}") from None
                if vals[2] <= 0 or vals[3] <= 0:
                    raise LabelFileError(f"{where}: width and height must be positive")
                if any(v < -0.01 or v > 1.01 for v in vals):
                    raise LabelFileError(f"{where}: coordinates must be normalised to 0..1 (got {vals})")
                box = _box(tag.strip(), *vals)
                if box is not None:
                    regions.append(box)
            self._add(str(key), regions)


class CocoLabels(_RegionSource):
    """COCO instances JSON: ``images``, ``annotations`` (pixel ``bbox`` [x, y, w, h]) and ``categories``."""

    def __init__(self, path: str | os.PathLike[str], data: Any | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        name = self.path.name
        data = _load_json(self.path) if data is None else data
        try:
            cats = {c["id"]: str(c["name"]) for c in data.get("categories", [])}
            images: dict[Any, tuple[str, float, float]] = {}
            for i, img in enumerate(data["images"]):
                try:
                    w, h = _num(img["width"], "'width'"), _num(img["height"], "'height'")
                    if w <= 0 or h <= 0:
                        raise ValueError("width and height must be positive")
                    images[img["id"]] = (str(img["file_name"]), w, h)
                except KeyError as exc:
                    raise LabelFileError(f"{name}: images[{i}]: missing {exc.args[0]!r}") from None
                except ValueError as exc:
                    raise LabelFileError(f"{name}: images[{i}]: {exc}") from None
            per_image: dict[Any, list[RegionLabel]] = {k: [] for k in images}
            for i, ann in enumerate(data["annotations"]):
                where = f"{name}: annotations[{i}]"
                try:
                    image_id, cat_id, bbox = ann["image_id"], ann["category_id"], ann["bbox"]
                except KeyError as exc:
                    raise LabelFileError(f"{where}: missing {exc.args[0]!r}") from None
                if image_id not in images:
                    raise LabelFileError(f"{where}: image_id {image_id!r} is not in 'images'")
                if cat_id not in cats:
                    raise LabelFileError(f"{where}: category_id {cat_id!r} is not in 'categories'")
                if not isinstance(bbox, list) or len(bbox) != 4:
                    raise LabelFileError(f"{where}: bbox must be [x, y, width, height]")
                try:
                    x, y, bw, bh = (_num(v, "bbox value") for v in bbox)
                except ValueError as exc:
                    raise LabelFileError(f"{where}: {exc}") from None
                _, w, h = images[image_id]
                box = _box(cats[cat_id], x / w, y / h, bw / w, bh / h)
                if box is not None:  # a box wholly outside its image says nothing about it
                    per_image[image_id].append(box)
        except (KeyError, TypeError, AttributeError) as exc:
            raise LabelFileError(f"{name}: not a COCO instances file ({exc.__class__.__name__}: {exc})") from None
        for image_id, (file_name, _, _) in images.items():
            self._add(file_name, per_image[image_id])
        # A category without a box is still a tag the project should have.
        self._tags.update(cats.values())


def open_label_source(spec: str, root: str | os.PathLike[str]) -> LabelSource:
    """``"folders"`` or the path of a ``.csv`` manifest, a regions ``.json`` or a COCO ``.json``."""
    if spec == "folders":
        return FolderLabels(root)
    path = Path(spec)
    if not path.exists() and not path.is_absolute() and (Path(root) / spec).exists():
        path = Path(root) / spec  # a label file kept inside the tree, named relative to it
    if not path.exists():
        raise LabelFileError(f"{path.name}: label file not found ({spec})")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvLabels(path, root)
    if suffix == ".json":
        data = _load_json(path)
        if isinstance(data, Mapping) and "images" in data and "annotations" in data:
            return CocoLabels(path, data)
        return RegionsJsonLabels(path, data)
    raise LabelFileError(f"{path.name}: unknown label source (use 'folders', a .csv manifest or a .json file)")
