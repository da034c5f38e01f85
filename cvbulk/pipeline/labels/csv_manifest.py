"""A CSV manifest ``path,tags[,metadata]`` (any other column is ignored).

* The file is UTF-8 (a BOM is tolerated); bytes that are not UTF-8 are kept as the scan keeps file names
  (``surrogateescape``), so a row names a non-UTF-8 file exactly.
* The ``tags`` cell follows THE separator rule of :mod:`.tagcell` (``;`` only, quotes for the rest).
* ``metadata`` (optional, what ``cvbulk export --format csv`` writes): the image's metadata as a JSON object
  of strings; an empty cell is none. Metadata the service would refuse makes that image's LabelProblem.
* Paths are relative to ROOT or absolute under it; rows naming the same path merge.
* A malformed file (no header, an unclosed quote, a row without a path, a malformed tags cell) is one
  :class:`LabelFileError` with its line number; a row with bad tags makes that image's LabelProblem.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ._base import (
    LabelFileError,
    LabelProblem,
    Labels,
    MappedLabels,
    check_metadata,
    check_tag,
    norm_rel,
    open_label_text,
)
from .tagcell import decode_tags

__all__ = ["CsvLabels", "PATH_COLUMNS", "TAG_COLUMNS", "METADATA_COLUMN"]

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image")
TAG_COLUMNS = ("tags", "tag", "labels", "label")
METADATA_COLUMN = "metadata"



class CsvLabels(MappedLabels):
    def __init__(self, path: str | os.PathLike[str], root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.root = Path(root)
        name = self.path.name
        root_abs = os.path.abspath(self.root)
        merged: dict[str, list[str]] = {}
        metadata: dict[str, tuple[tuple[str, str], ...] | str] = {}  # the pairs, or why they are unusable
        verbatim: dict[str, str] = {}  # a path cell with surrounding spaces: kept exact, matched stripped too
        line = 1
        with open_label_text(self.path) as fh:
            try:
                reader = csv.reader(fh, strict=True)
                header = next(reader, None)
                if header is None:
                    raise LabelFileError(f"{name}: the file is empty; expected a header 'path,tags'")
                cols = [h.strip().lower() for h in header]
                p_col = next((cols.index(c) for c in PATH_COLUMNS if c in cols), None)
                t_col = next((cols.index(c) for c in TAG_COLUMNS if c in cols), None)
                m_col = cols.index(METADATA_COLUMN) if METADATA_COLUMN in cols else None
                if p_col is None or t_col is None:
                    raise LabelFileError(
                        f"{name}: line 1: expected a header with 'path' and 'tags' columns, found {header!r}"
                    )
                while True:
                    line = reader.line_num + 1  # where the next row starts (a quoted cell may span lines)
                    row = next(reader, None)
                    if row is None:
                        break
                    if not row or all(not c.strip() for c in row):
                        continue
                    if len(row) <= p_col or not row[p_col].strip():
                        raise LabelFileError(f"{name}: line {line}: no path in this row")
                    raw_path = row[p_col]
                    rel = self._relative(raw_path, root_abs)
                    if rel is None:
                        raise LabelFileError(f"{name}: line {line}: path {raw_path!r} is outside ROOT {self.root}")
                    try:
                        tags = decode_tags(row[t_col] if len(row) > t_col else "")
                    except ValueError as exc:
                        raise LabelFileError(f"{name}: line {line}: {exc}") from None
                    acc = merged.setdefault(rel, [])
                    acc.extend(t for t in tags if t not in acc)
                    cell = row[m_col].strip() if m_col is not None and len(row) > m_col else ""
                    if cell:
                        metadata[rel] = _metadata(cell)
                    stripped = norm_rel(raw_path.strip())
                    if stripped != rel:
                        verbatim[stripped] = rel
            except csv.Error as exc:
                raise LabelFileError(f"{name}: line {line}: malformed CSV: {exc}") from None
        shared: dict[tuple[Any, ...], Labels | LabelProblem] = {}  # a million rows, few tag sets
        for rel, tag_list in merged.items():
            meta = metadata.get(rel, ())
            key = (tuple(tag_list), meta)
            result = shared.get(key)
            if result is None:
                bad = next((r for r in map(check_tag, key[0]) if r is not None), None)
                if bad is None and isinstance(meta, str):
                    bad = meta
                if bad is not None or isinstance(meta, str):
                    result = shared[key] = LabelProblem(bad or str(meta))
                else:
                    result = shared[key] = Labels(key[0], metadata=meta)
            self._put(rel, result)
        for stripped, rel in verbatim.items():
            self._by_path.setdefault(stripped, self._by_path[rel])

    @staticmethod
    def _relative(raw: str, root_abs: str) -> str | None:
        p = raw.strip().replace("\\", "/")
        if os.path.isabs(p) or p.startswith("/"):
            ap = os.path.abspath(p)
            if ap != root_abs and not ap.startswith(root_abs.rstrip(os.sep) + os.sep):
                return None
            return norm_rel(os.path.relpath(ap, root_abs).replace(os.sep, "/"))
        rel = norm_rel(raw.replace("\\", "/"))
        if rel.startswith("../") or rel == "..":
            return None
        return rel


def _metadata(cell: str) -> tuple[tuple[str, str], ...] | str:
    try:
        value = json.loads(cell)
    except ValueError:
        return "the metadata cell is not a JSON object"
    return check_metadata(value)
