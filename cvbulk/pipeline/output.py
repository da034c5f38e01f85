"""Prediction writers: CSV (classification or one row per box) and JSONL, written as results arrive.

Crash safety. Rows are formatted into a private buffer and written to the file by whole records
with ``os.write`` on an ``O_APPEND`` descriptor, at every ``flush_rows`` rows, every
``flush_seconds`` and on close. A process killed with ``kill -9`` loses only the unflushed buffer
(a write that returned is in the OS page cache); at worst a write is torn at its end, which
:func:`existing_keys` (and opening a writer with ``append=True``) repairs by truncating the partial
last record.

Resume without duplicates: on resume, the output file itself says which images already have their
rows: ``existing_keys(path)`` gives their paths. The pipeline should skip those, score what is
missing, and ``flush()`` the writer before it records a batch as done in the journal, so that the
journal never claims a row that is not in the file.

Spreadsheet safety: a text cell that starts with ``= + - @``, a tab or a CR would be run as a
formula by a spreadsheet, so it gets a leading ``'`` (OWASP "CSV injection"); so does a text cell
that already starts with ``'``, which keeps the escaping reversible (:func:`unescape_cell`).
Numbers (probabilities, coordinates) and text that is a plain number (``-0.5``) are left alone.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "PredictionRow",
    "PredictionWriter",
    "CsvClassificationWriter",
    "CsvDetectionWriter",
    "JsonlWriter",
    "open_prediction_writer",
    "existing_keys",
    "repair_torn_tail",
    "escape_cell",
    "unescape_cell",
    "format_number",
    "CLASSIFICATION_COLUMNS",
    "DETECTION_COLUMNS",
    "JSONL_SUFFIXES",
]

CLASSIFICATION_COLUMNS = ("path", "status", "reason", "top_tag", "top_probability")
DETECTION_COLUMNS = ("path", "status", "reason", "tag", "probability", "left", "top", "width", "height")
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_BOX_FIELDS = ("left", "top", "width", "height")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class PredictionRow:
    """One image's result. ``predictions``: dicts ``{tagName, tagId, probability, boundingBox?}``
    (the service's JSON; objects with ``to_json()`` are accepted too). ``extra`` goes to JSONL
    only: the CSV columns stay fixed so that appended runs line up.
    """

    path: str
    status: str
    reason: str | None = None
    predictions: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None


def escape_cell(text: str) -> str:
    """Neutralise a text cell a spreadsheet would run as a formula (reversible)."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell`."""
    if text.startswith("'") and len(text) > 1 and text[1] in "=+-@\t\r'":
        return text[1:]
    return text


def format_number(value: float | int | None) -> str:
    """A float with at most 6 decimals, never in exponent form; '' for None or NaN."""
    if value is None:
        return ""
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return ""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split()) if text else ""


def _as_dict(prediction: Any) -> dict[str, Any]:
    """A prediction as the service's JSON dict (model objects of cvbulk.client have to_json())."""
    if isinstance(prediction, dict):
        return prediction
    to_json = getattr(prediction, "to_json", None)
    if callable(to_json):
        return dict(to_json())
    raise TypeError(f"a prediction must be a dict or have to_json(), not {type(prediction).__name__}")


def _top(predictions: Sequence[dict[str, Any]] | None) -> dict[str, Any] | None:
    if not predictions:
        return None
    return max(predictions, key=lambda p: float(p.get("probability") or 0.0))


class PredictionWriter:
    """Base writer: buffering, timed flushes, whole-record appends. Use :func:`open_prediction_writer`."""

    def __init__(
        self,
        path: str | Path,
        *,
        append: bool,
        flush_rows: int = 256,
        flush_seconds: float = 1.0,
        fsync: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.fsync = fsync
        self.rows = 0  # images written by this writer
        self._clock = clock
        self._buffer = io.StringIO()
        self._pending = 0
        self._last_flush = clock()
        if append:
            repair_torn_tail(self.path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self._fd: int | None = os.open(self.path, flags, 0o666)
        try:
            self._start(is_empty=os.fstat(self._fd).st_size == 0)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    # Subclasses: write the header (when the file is empty) and format rows into self._buffer.
    def _start(self, *, is_empty: bool) -> None:  # pragma: no cover - overridden
        pass

    def _format(self, row: PredictionRow) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def write(self, row: PredictionRow) -> None:
        """Add one image's rows; flushes when ``flush_rows`` or ``flush_seconds`` is reached."""
        if self._fd is None:
            raise ValueError(f"writer for {self.path} is closed")
        if row.predictions and not all(isinstance(p, dict) for p in row.predictions):
            row = replace(row, predictions=[_as_dict(p) for p in row.predictions])
        self._format(row)
        self.rows += 1
        self._pending += 1
        if self._pending >= self.flush_rows:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> bool:
        """Flush when ``flush_seconds`` have passed since the last flush (for idle periods)."""
        if self._pending and self._clock() - self._last_flush >= self.flush_seconds:
            self.flush()
            return True
        return False

    def write_many(self, rows: Iterable[PredictionRow]) -> None:
        for row in rows:
            self.write(row)

    def flush(self) -> None:
        """Write buffered records to the file (whole records, one append)."""
        self._last_flush = self._clock()
        data = self._buffer.getvalue()
        if not data or self._fd is None:
            return
        # surrogateescape: a file name with undecodable bytes round-trips instead of crashing the run.
        view = memoryview(data.encode("utf-8", errors="surrogateescape"))
        self._buffer = io.StringIO()
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # Disk full or the like: keep exactly the bytes not yet written, so a later flush
            # continues the file where it stopped instead of repeating rows.
            self._buffer.write(bytes(view).decode("utf-8", errors="surrogateescape"))
            raise
        self._pending = 0
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, rows={self.rows})"


class _BufferSink:
    __slots__ = ("_owner",)

    def __init__(self, owner: PredictionWriter) -> None:
        self._owner = owner

    def write(self, text: str) -> int:
        return self._owner._buffer.write(text)


class _CsvWriter(PredictionWriter):
    columns: tuple[str, ...] = ()

    def __init__(self, path: str | Path, **kw: Any) -> None:
        self._csv = None  # set in _start
        super().__init__(path, **kw)

    def _start(self, *, is_empty: bool) -> None:
        header = [escape_cell(c) for c in self.columns]
        if not is_empty:
            found = _read_csv_header(self.path)
            if found is not None and found != header:
                raise ValueError(
                    f"{self.path} has columns {','.join(found)}; expected {','.join(header)} "
                    "(another command or another tag list wrote it)"
                )
        # newline="" semantics: the csv module writes its own \r\n record terminator. It writes
        # through a sink so that it always lands in the current buffer (flush swaps buffers).
        self._csv = csv.writer(_BufferSink(self), lineterminator="\r\n")
        if is_empty:
            self._csv.writerow(header)
            self.flush()


class CsvClassificationWriter(_CsvWriter):
    """One row per image: path, status, reason, top tag, top probability, each tag's probability.

    The tag columns are ``tag_names`` in the order given (all the project's tags, so the columns
    do not depend on which tags an image happened to get); a tag missing from a prediction leaves
    its cell empty, and a predicted tag not among ``tag_names`` only shows as the top tag.
    """

    def __init__(self, path: str | Path, *, tag_names: Sequence[str], **kw: Any) -> None:
        self.tag_names = list(tag_names)
        self.columns = CLASSIFICATION_COLUMNS + tuple(self.tag_names)
        self._index = {name: i for i, name in enumerate(self.tag_names)}
        super().__init__(path, **kw)

    def _format(self, row: PredictionRow) -> None:
        probs = [""] * len(self.tag_names)
        for p in row.predictions or ():
            i = self._index.get(p.get("tagName", ""))
            if i is not None:
                probs[i] = format_number(p.get("probability"))
        top = _top(row.predictions)
        self._csv.writerow(
            [
                escape_cell(row.path),
                escape_cell(row.status),
                escape_cell(_one_line(row.reason)),
                escape_cell(str(top.get("tagName", ""))) if top else "",
                format_number(top.get("probability")) if top else "",
                *probs,
            ]
        )


class CsvDetectionWriter(_CsvWriter):
    """One row per box; an image with no box (or an error) still gets one row."""

    columns = DETECTION_COLUMNS

    def __init__(self, path: str | Path, *, tag_names: Sequence[str] = (), **kw: Any) -> None:
        self.tag_names = list(tag_names)
        super().__init__(path, **kw)

    def _format(self, row: PredictionRow) -> None:
        lead = [escape_cell(row.path), escape_cell(row.status), escape_cell(_one_line(row.reason))]
        boxes = row.predictions or ()
        if not boxes:
            self._csv.writerow(lead + [""] * 6)
            return
        for p in boxes:
            box = p.get("boundingBox") or {}
            self._csv.writerow(
                lead
                + [escape_cell(str(p.get("tagName", ""))), format_number(p.get("probability"))]
                + [format_number(box.get(f)) for f in _BOX_FIELDS]
            )


class JsonlWriter(PredictionWriter):
    """One JSON object per image with the full prediction."""

    def __init__(self, path: str | Path, *, detect: bool = False, **kw: Any) -> None:
        self.detect = detect
        super().__init__(path, **kw)

    def _start(self, *, is_empty: bool) -> None:
        pass  # no header

    def _format(self, row: PredictionRow) -> None:
        obj: dict[str, Any] = {"path": row.path, "status": row.status, "reason": _one_line(row.reason) or None}
        top = _top(row.predictions)
        if not self.detect:
            obj["top_tag"] = top.get("tagName") if top else None
            obj["top_probability"] = top.get("probability") if top else None
        obj["predictions"] = row.predictions if row.predictions is not None else []
        if row.extra:
            obj["extra"] = row.extra
        # One line per object: json.dumps escapes any newline inside strings.
        self._buffer.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str))
        self._buffer.write("\n")


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in JSONL_SUFFIXES


def open_prediction_writer(
    path: str | Path,
    *,
    tag_names: Sequence[str],
    detect: bool,
    append: bool,
    flush_rows: int = 256,
    flush_seconds: float = 1.0,
    fsync: bool = False,
) -> PredictionWriter:
    """A writer chosen by suffix: JSONL for ``.jsonl``/``.ndjson``, CSV otherwise.

    ``append=True`` keeps what the file holds (repairing a torn last record, never repeating the
    header, refusing a CSV whose header differs); ``append=False`` starts the file afresh.
    """
    path = Path(path)
    kw: dict[str, Any] = dict(append=append, flush_rows=flush_rows, flush_seconds=flush_seconds, fsync=fsync)
    if _is_jsonl(path):
        return JsonlWriter(path, detect=detect, **kw)
    if detect:
        return CsvDetectionWriter(path, tag_names=tag_names, **kw)
    return CsvClassificationWriter(path, tag_names=tag_names, **kw)


# -- reading back and repairing ------------------------------------------------------------------


def _lines_with_offsets(f: io.BufferedReader) -> Iterator[tuple[bytes, int]]:
    """Each line (bytes, split on \\n only) and the file offset just after it."""
    offset = 0
    for line in f:
        offset += len(line)
        yield line, offset


def _scan_csv(path: Path, on_record: Callable[[list[str]], None] | None = None) -> tuple[int, int]:
    """Hand each complete record to ``on_record``; the offset after the last one, and the size.

    A record is complete when its last line ends with a newline and no quoted field is left
    open; the csv reader pulls exactly the lines of one record, so the offset after each record
    is known even when quoted fields hold newlines. Streams: memory does not grow with the file.
    """
    good = 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        source = _lines_with_offsets(f)
        state = {"offset": 0}

        def feed() -> Iterator[str]:
            for line, offset in source:
                if not line.endswith(b"\n"):
                    return  # torn tail: never hand it to the parser
                state["offset"] = offset
                yield line.decode("utf-8", errors="surrogateescape")

        try:
            for record in csv.reader(feed(), strict=True):
                good = state["offset"]
                if on_record is not None:
                    on_record(record)
        except csv.Error:
            pass  # a record left open at the end (torn inside a quoted field): drop it
    return good, size


def _read_csv_header(path: Path) -> list[str] | None:
    with open(path, "rb") as f:
        first = f.readline()
    if not first.endswith(b"\n"):
        return None
    try:
        return next(csv.reader([first.decode("utf-8", errors="surrogateescape")]))
    except (csv.Error, StopIteration):
        return None


def _scan_jsonl(path: Path, on_line: Callable[[bytes], None] | None = None) -> tuple[int, int]:
    """Hand each complete line to ``on_line``; the offset after the last one, and the size."""
    good = 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        for line, offset in _lines_with_offsets(f):
            if not line.endswith(b"\n"):
                break
            good = offset
            if on_line is not None:
                on_line(line)
    return good, size


def repair_torn_tail(path: str | Path) -> bool:
    """Truncate a partial last record left by a killed writer. True when the file was cut.

    Cheap in the common case: a file that ends with a newline is left alone (a CSV is then still
    checked for a quoted field torn exactly after a newline by :func:`existing_keys`).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
    good, size = _scan_jsonl(path) if _is_jsonl(path) else _scan_csv(path)
    return _truncate(path, good, size)


def _truncate(path: Path, good: int, size: int) -> bool:
    if good >= size:
        return False
    with open(path, "r+b") as f:
        f.truncate(good)
        f.flush()
        os.fsync(f.fileno())
    return True


def existing_keys(path: str | Path) -> set[str]:
    """The image paths an output file already holds (CSV first column, JSONL ``"path"``).

    Repairs the file first: a torn (partial) last record is truncated, so a resumed run appends
    cleanly. A missing file holds nothing.
    """
    path = Path(path)
    if not path.exists():
        return set()
    keys: set[str] = set()
    if _is_jsonl(path):

        def take_line(line: bytes) -> None:
            try:
                obj = json.loads(line.decode("utf-8", errors="surrogateescape"))
            except ValueError:
                return  # a damaged line in the middle: its image is scored again
            if isinstance(obj, dict) and isinstance(obj.get("path"), str):
                keys.add(obj["path"])

        _truncate(path, *_scan_jsonl(path, take_line))
        return keys

    seen_header = False

    def take_record(record: list[str]) -> None:
        nonlocal seen_header
        if not seen_header:
            seen_header = True
            if record and record[0] == "path":
                return  # the header
        if record:
            keys.add(unescape_cell(record[0]))

    _truncate(path, *_scan_csv(path, take_record))
    return keys
