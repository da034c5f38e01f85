"""What every label reader shares: the label types, the one validation of tags and boxes, and lookups.

Two kinds of failure, never mixed up:

* a malformed FILE (bad JSON, an unclosed CSV quote, no header, no ``image_url``) is one
  :class:`LabelFileError` naming the file and the line or entry: the run stops before anything is sent;
* bad labels of ONE image (a NaN coordinate, a zero-size box, a box wholly outside the image, a tag name the
  service cannot take) are that image's :class:`LabelProblem`: it alone is rejected, the batch goes on.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

__all__ = [
    "LabelFileError",
    "RegionLabel",
    "Labels",
    "LabelProblem",
    "LabelResult",
    "LabelSource",
    "MAX_TAG_LENGTH",
    "check_metadata",
    "MAX_LABEL_FILE_BYTES",
    "NO_LABEL",
    "UNTAGGED",
    "check_tag",
    "make_region",
    "decide",
    "norm_rel",
    "load_json",
    "open_label_text",
    "MappedLabels",
]

# The service's tag name limit (the emulator enforces the same: empty or longer than 256 is BadRequestTagName).
MAX_TAG_LENGTH = 256
# A label file larger than this is refused before it is read: JSON is parsed whole, in memory.
MAX_LABEL_FILE_BYTES = 1 << 30
# Tolerance for normalised coordinates a little outside 0..1 (rounding in other tools); clamped afterwards.
_NORMALISED_SLACK = 0.01

NO_LABEL = "no label"
UNTAGGED = "untagged (no tags in the label file; --untagged uploads it without tags)"


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
    """The labels of one image: its tags and, for object detection, its regions (whose tags are in ``tags``),
    and the image metadata the label file gives (sorted key-value pairs: what ``cvbulk export`` wrote)."""

    tags: tuple[str, ...]
    regions: tuple[RegionLabel, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def untagged(self) -> bool:
        return not self.tags and not self.regions


@dataclass(frozen=True, slots=True)
class LabelProblem:
    """Why one image cannot be given its labels. ``kind``: ``invalid`` (bad labels: reject the image),
    ``no-label`` (the source says nothing about it) or ``untagged`` (listed with no tag)."""

    reason: str
    kind: str = "invalid"


LabelResult = Labels | LabelProblem


@runtime_checkable
class LabelSource(Protocol):
    has_regions: bool

    def labels_for(self, relpath: str) -> Labels | LabelProblem | None:
        """The labels of the file at ``relpath`` (posix, relative to ROOT); None when the source has none;
        a :class:`LabelProblem` when the source's labels for it are unusable."""
        ...

    def tag_names(self) -> list[str]:
        """Every tag the source can produce, sorted."""
        ...


#: The tag types a label file can name besides Regular (the service's ``TagType``).
SPECIAL_TAG_TYPES = ("Negative", "GeneralProduct")


def tag_types(source: object) -> dict[str, str]:
    """The tags ``source`` names a type for other than Regular (COCO's ``supercategory: "Negative"``, as
    ``cvbulk export`` writes a Negative tag): name -> type; {} for a source that names none."""
    found = getattr(source, "tag_types", None)
    return dict(found()) if callable(found) else {}


def decide(found: Labels | LabelProblem | None, *, untagged: bool) -> Labels | LabelProblem:
    """THE rule for an image without usable labels, in one place for every job.

    * not in the source (None): skipped with ``NO_LABEL``, unless ``untagged`` (then sent without tags);
    * in the source with no tag and no region (an empty manifest cell, ``label: []``, a region list that is
      empty, a YOLO image without a label file): skipped with ``UNTAGGED``, unless ``untagged``;
    * invalid labels: rejected with the reason, whatever ``untagged`` says (sending it untagged would lose
      the labels the user meant it to have).
    """
    if isinstance(found, LabelProblem):
        return found
    if found is None:
        return Labels(()) if untagged else LabelProblem(NO_LABEL, "no-label")
    if found.untagged and not untagged:
        return LabelProblem(UNTAGGED, "untagged")
    return found


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The service's limits on image metadata (ImageFileCreateBatch.metadata, UpdateImageMetadata).
MAX_METADATA_PAIRS = 50
MAX_METADATA_KEY = 256
MAX_METADATA_VALUE = 512


def check_metadata(value: Any) -> tuple[tuple[str, str], ...] | str:
    """An image's metadata (a JSON object of strings) as sorted pairs, or why the service would refuse it."""
    if value is None or value == {}:
        return ()
    if not isinstance(value, Mapping):
        return f"metadata must be an object of strings, not {type(value).__name__}"
    if len(value) > MAX_METADATA_PAIRS:
        return f"metadata has {len(value)} pairs; the service keeps at most {MAX_METADATA_PAIRS} per image"
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            return f"metadata {k!r}: keys and values must be strings"
        if not k or len(k) > MAX_METADATA_KEY:
            return f"metadata key {k[:40]!r}: 1 to {MAX_METADATA_KEY} characters"
        if len(v) > MAX_METADATA_VALUE:
            return f"metadata {k!r}: a value holds at most {MAX_METADATA_VALUE} characters"
    return tuple(sorted(value.items()))


def check_tag(name: Any) -> str | None:
    """Why ``name`` cannot be a tag of the service, or None when it can."""
    if not isinstance(name, str):
        return f"tag {name!r} is not a string"
    return _check_tag_text(name)


@lru_cache(maxsize=1 << 16)
def _check_tag_text(name: str) -> str | None:
    # Cached: a project has few tags and a million labels naming them.
    if not name.strip():
        return "a tag name is empty"
    if len(name) > MAX_TAG_LENGTH:
        return f"tag {name[:40]!r}... is {len(name)} characters long (the service takes at most {MAX_TAG_LENGTH})"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"tag {name.encode('utf-8', 'backslashreplace').decode('ascii', 'replace')!r} is not valid text"
    if _CONTROL.search(name):
        return f"tag {name!r} contains control characters"
    return None


def _finite(value: Any, what: str) -> float | str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{what} is not a number ({value!r})"
    v = float(value)
    if not math.isfinite(v):
        return f"{what} is {value!r}"
    return v


def _clamp01(v: float) -> float:
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def make_region(
    tag: Any, left: Any, top: Any, width: Any, height: Any, *, strict_range: bool = True
) -> RegionLabel | str:
    """A validated, clamped normalised box, or the reason it is unusable.

    NaN / infinite / non-numeric values, a zero or negative size, a box with nothing left inside the image
    after clamping, or (``strict_range``: the format is normalised) values well outside 0..1.
    """
    reason = check_tag(tag)
    if reason is not None:
        return reason
    vals: list[float] = []
    for what, v in (("left", left), ("top", top), ("width", width), ("height", height)):
        got = _finite(v, what)
        if isinstance(got, str):
            return f"region {tag!r}: {got}"
        vals.append(got)
    x, y, w, h = vals
    if w <= 0 or h <= 0:
        return f"region {tag!r}: width and height must be positive (got {w:g} x {h:g})"
    if strict_range and (
        min(x, y) < -_NORMALISED_SLACK or max(x + w, y + h) > 1 + _NORMALISED_SLACK
    ):
        return f"region {tag!r}: coordinates must be normalised to 0..1 (got {x:g}, {y:g}, {w:g}, {h:g})"
    x0, y0 = _clamp01(x), _clamp01(y)
    x1, y1 = _clamp01(x + w), _clamp01(y + h)
    if x1 - x0 <= 1e-9 or y1 - y0 <= 1e-9:
        return f"region {tag!r}: nothing of the box is inside the image"
    # Keep the exact values when no clamping happened: x0 + (x1 - x0) need not give back w bit for bit.
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return RegionLabel(tag, x, y, w, h)
    return RegionLabel(tag, x0, y0, x1 - x0, y1 - y0)


def norm_rel(p: str) -> str:
    """One spelling per path: forward slashes, no ``./``, no doubled separators. Not stripped: a name may
    begin or end with a space."""
    p = p.replace("\\", "/")
    if not p:
        return ""
    p = posixpath.normpath(p)  # also drops a leading "./"
    return "" if p == "." else p


@contextmanager
def open_label_text(path: Path) -> Iterator[TextIO]:
    """The label file as text, refused when larger than ``MAX_LABEL_FILE_BYTES``; a missing, unreadable or
    folder path is one :class:`LabelFileError`. Bytes that are not UTF-8 are kept (``surrogateescape``) so
    a non-UTF-8 file name in the file matches the name the scan stores."""
    name = path.name
    try:
        size = os.stat(path).st_size
        if size > MAX_LABEL_FILE_BYTES:
            raise LabelFileError(
                f"{name}: {size} bytes is larger than a label file may be ({MAX_LABEL_FILE_BYTES} bytes)"
            )
        fh = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        raise LabelFileError(f"{name}: label file not found") from None
    except IsADirectoryError:
        raise LabelFileError(f"{name}: is a folder, not a label file") from None
    except OSError as exc:
        raise LabelFileError(f"{name}: cannot read the label file: {exc.strerror}") from None
    with fh:
        try:
            yield fh
        except OSError as exc:
            raise LabelFileError(f"{name}: cannot read the label file: {exc.strerror}") from None


def load_json(path: Path) -> Any:
    """The file's JSON, bounded in size and depth; any failure is one :class:`LabelFileError`."""
    with open_label_text(path) as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise LabelFileError(
                f"{path.name}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}"
            ) from None
        except RecursionError:
            raise LabelFileError(f"{path.name}: the JSON is nested too deeply to be a label file") from None


class MappedLabels:
    """A source backed by a dict of path -> result, with two optional fallbacks.

    * ``by_name``: a key that is a bare file name matches that name in any folder (od_regions.json);
    * ``tails``: ROOT may be a folder inside the tree the keys name (an AutoML ``image_url`` is the full
      datastore path): a relpath matches the one key that ends with it; a tail shared by several keys
      matches none of them.
    """

    has_regions = False

    def __init__(self, *, tails: bool = False) -> None:
        self._by_path: dict[str, LabelResult] = {}
        self._by_name: dict[str, LabelResult] = {}
        self._tails: dict[str, str | None] | None = {} if tails else None
        self._tags: set[str] = set()
        self._types: dict[str, str] = {}  # tag -> a type other than Regular, where the file names one

    def tag_types(self) -> dict[str, str]:
        """The tags the file gives a type other than Regular (see :func:`tag_types`)."""
        return dict(self._types)

    def _put(self, key: str, result: LabelResult, *, by_name: bool = False) -> None:
        rel = norm_rel(key)
        self._by_path[rel] = result
        if isinstance(result, Labels):
            self._tags.update(result.tags)
        if by_name and "/" not in rel:
            self._by_name[rel] = result
        if self._tails is not None:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                tail = "/".join(parts[i:])
                seen = self._tails.get(tail, rel)
                self._tails[tail] = rel if seen == rel else None

    def labels_for(self, relpath: str) -> Labels | LabelProblem | None:
        found = self._by_path.get(relpath)
        if found is not None:
            return found
        rel = norm_rel(relpath)
        found = self._by_path.get(rel)
        if found is None and self._by_name:
            found = self._by_name.get(posixpath.basename(rel))
        if found is None and self._tails and rel in self._tails:
            full = self._tails[rel]
            if full is None:
                return LabelProblem(f"several entries of the label file end in {rel!r}")
            found = self._by_path.get(full)
        return found

    def tag_names(self) -> list[str]:
        return sorted(self._tags)

    def listed(self) -> list[str]:
        """Every path the label file names (a job reports those no scanned file matched: :meth:`matched_key`)."""
        return list(self._by_path)

    def matched_key(self, relpath: str) -> str | None:
        """The path of the label file that ``relpath`` matches (as :meth:`labels_for` looks it up), or None."""
        if relpath in self._by_path:
            return relpath
        rel = norm_rel(relpath)
        if rel in self._by_path:
            return rel
        if self._by_name:
            name = posixpath.basename(rel)
            if name in self._by_name:
                return name
        if self._tails and rel in self._tails:
            return self._tails[rel]
        return None
