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

Valid UTF-8, one line per record: every text cell goes through :func:`names.clean_text` (an undecodable
byte of a file name becomes ``\\xHH``, a control character ``\\xHH``; a key from the scan passes as is).

Never clobber a file that is not ours. Before anything is written to an existing, non-empty file (append
or not) and before :func:`existing_keys` cuts a torn tail, the whole file is read back: a CSV must start
with one of our headers and hold one complete, single-line record of the header's width per line; a JSONL
file one JSON object with string ``path`` and ``status`` per line; no NUL byte anywhere. Only then may a
torn last record (a partial line, as a kill leaves it) be cut. Anything else raises
:class:`OutputFileError` and the file is left byte for byte as it was.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import stat as stat_mod
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .names import clean_text, key_for

__all__ = [
    "OutputFileError",
    "check_output_file",
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

_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: A torn last record longer than this is not a record of ours cut by a kill.
_MAX_TAIL = 16 * 1024 * 1024

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_INFINITIES = (math.inf, -math.inf)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class OutputFileError(ValueError):
    """An existing output file cvbulk did not write or cannot read back: it is left untouched."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        shown = key_for(os.fspath(path))
        super().__init__(f"{shown}: {reason}; left untouched: choose another --output or move the file away")


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


def _cell(text: str) -> str:
    """A text cell: valid UTF-8 on one line (names.clean_text), then formula-safe."""
    return escape_cell(clean_text(text))


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
    if x != x or x in _INFINITIES:  # NaN, +-inf (without two calls per cell)
        return ""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _one_line(text: str | None) -> str:
    return clean_text(" ".join(str(text).split())) if text else ""


_is_dict = functools.partial(type.__instancecheck__, dict)  # isinstance(p, dict), without a Python frame per item


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
        # Read back before any write: a file that is not ours raises OutputFileError, untouched.
        self._existing = _check_before_write(self.path, append=append)
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
        if row.predictions and not all(map(_is_dict, row.predictions)):
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
        # emptied, not replaced: the csv writer writes into this very buffer
        self._buffer.seek(0)
        self._buffer.truncate()
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


class _CsvWriter(PredictionWriter):
    columns: tuple[str, ...] = ()

    def __init__(self, path: str | Path, **kw: Any) -> None:
        self._csv: Any = None  # set in _start
        super().__init__(path, **kw)

    def _start(self, *, is_empty: bool) -> None:
        header = [_cell(c) for c in self.columns]
        if not is_empty:
            found = self._existing.columns if self._existing is not None else _read_csv_header(self.path)
            if found is not None and found != header:
                raise OutputFileError(
                    self.path,
                    f"has columns {clean_text(','.join(found))}; expected {','.join(header)} "
                    "(another command or another tag list wrote it)",
                )
        # newline="" semantics: the csv module writes its own \r\n record terminator, straight into the
        # buffer (which flush empties, never replaces).
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
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
        self._cells: dict[str, str] = {}
        super().__init__(path, **kw)

    def _format(self, row: PredictionRow) -> None:
        probs = [""] * len(self.tag_names)
        index = self._index
        top: dict[str, Any] | None = None
        best = 0.0
        for p in row.predictions or ():
            probability = p.get("probability")
            i = index.get(p.get("tagName", ""))
            if i is not None:
                probs[i] = format_number(probability)
            value = float(probability or 0.0)
            if top is None or value > best:  # the first of the most probable, as _top
                top, best = p, value
        self._csv.writerow(
            [
                _cell(row.path),
                self._cached_cell(row.status),
                escape_cell(_one_line(row.reason)) if row.reason else "",
                self._cached_cell(str(top.get("tagName", ""))) if top else "",
                format_number(top.get("probability")) if top else "",
                *probs,
            ]
        )

    def _cached_cell(self, text: str) -> str:
        """:func:`_cell` of a text that repeats from row to row (a status, a tag name)."""
        cell = self._cells.get(text)
        if cell is None:
            if len(self._cells) >= 4096:
                self._cells.clear()
            cell = self._cells[text] = _cell(text)
        return cell


class CsvDetectionWriter(_CsvWriter):
    """One row per box; an image with no box (or an error) still gets one row."""

    columns = DETECTION_COLUMNS

    def __init__(self, path: str | Path, *, tag_names: Sequence[str] = (), **kw: Any) -> None:
        self.tag_names = list(tag_names)
        super().__init__(path, **kw)

    def _format(self, row: PredictionRow) -> None:
        lead = [_cell(row.path), _cell(row.status), escape_cell(_one_line(row.reason))]
        boxes = row.predictions or ()
        if not boxes:
            self._csv.writerow(lead + [""] * 6)
            return
        for p in boxes:
            box = p.get("boundingBox") or {}
            self._csv.writerow(
                lead
                + [_cell(str(p.get("tagName", ""))), format_number(p.get("probability"))]
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
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
        if _SURROGATE.search(line):  # an undecodable name (or extra value): make it valid UTF-8
            line = json.dumps(_clean_json(obj), ensure_ascii=False, separators=(",", ":"), default=str)
        self._buffer.write(line)
        self._buffer.write("\n")


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


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


# -- reading back, checking and repairing ---------------------------------------------------------

_CSV_LEAD = b"path,status,reason,"
_JSONL_LEAD = b'{"path":'


@dataclass
class _Inspection:
    """What reading back an existing output file found (the file is ours if this exists at all)."""

    keys: set[str]
    good: int                        # offset just after the last complete record
    size: int
    columns: list[str] | None        # a CSV's header
    signature: tuple[int, int, int]  # (inode, size, mtime_ns) when read


# Files read back whole by this process and found ours, so that ``existing_keys`` followed by
# ``open_prediction_writer`` reads a large file once, not twice. Keyed by the absolute path.
_verified: dict[str, _Inspection] = {}


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _lines_with_offsets(f: io.BufferedReader) -> Iterator[tuple[bytes, int]]:
    """Each line (bytes, split on \\n only) and the file offset just after it."""
    offset = 0
    for line in f:
        offset += len(line)
        yield line, offset


def _key(text: str) -> str:
    # A file an older cvbulk wrote may hold a raw undecodable name: read it as today's key.
    return key_for(text) if _SURROGATE.search(text) else text


def _check_tail(path: Path, tail: bytes, lead: bytes, records: int) -> None:
    """A partial last line may be cut only if it can be a record of ours torn by a kill."""
    if not tail:
        return
    if len(tail) > _MAX_TAIL:
        raise OutputFileError(path, f"its last line has no end and is {len(tail):,} bytes long")
    if b"\0" in tail:
        raise OutputFileError(path, "it holds binary data (a NUL byte)")
    if b"\r" in tail[:-1]:
        raise OutputFileError(path, "its last line holds a bare carriage return (another program wrote it)")
    if records == 0 and not (lead.startswith(tail) or tail.startswith(lead)):
        raise OutputFileError(path, "it does not start like a prediction file of cvbulk")


def _check_header(path: Path, record: list[str]) -> None:
    if tuple(record) == DETECTION_COLUMNS:
        return
    if tuple(record[: len(CLASSIFICATION_COLUMNS)]) == CLASSIFICATION_COLUMNS:
        return
    shown = clean_text(",".join(record))[:80]
    raise OutputFileError(path, f"its first line ({shown}) is not the header cvbulk writes")


def _inspect_csv(path: Path, size: int, collect: bool) -> tuple[set[str], int, list[str] | None]:
    keys: set[str] = set()
    columns: list[str] | None = None
    good = 0
    records = 0
    tail = b""
    offsets: list[int] = []

    with open(path, "rb") as f:
        source = _lines_with_offsets(f)

        def feed() -> Iterator[str]:
            nonlocal tail
            for n, (line, offset) in enumerate(source, start=1):
                if not line.endswith(b"\n"):
                    tail = line  # torn tail: never hand it to the parser
                    return
                if b"\0" in line:
                    raise OutputFileError(path, f"line {n} holds binary data (a NUL byte)")
                offsets.append(offset)
                yield line.decode("utf-8", errors="surrogateescape")

        reader = csv.reader(feed(), strict=True)
        try:
            for record in reader:
                if reader.line_num != records + 1:  # our records are one line each
                    raise OutputFileError(
                        path, f"the record on line {records + 1} spans several lines (an unclosed quote?)"
                    )
                records += 1
                good = offsets[-1]
                if columns is None:
                    _check_header(path, record)
                    columns = record
                    continue
                if len(record) != len(columns):
                    raise OutputFileError(
                        path, f"line {records} has {len(record)} fields where the header has {len(columns)}"
                    )
                if collect:
                    keys.add(_key(unescape_cell(record[0])))
        except csv.Error as exc:
            what = "opens a quote that is never closed" if "end of data" in str(exc) else f"is not valid CSV ({exc})"
            raise OutputFileError(path, f"line {records + 1} {what}") from None
    _check_tail(path, tail, _CSV_LEAD, records)
    return keys, good, columns


def _inspect_jsonl(path: Path, size: int, collect: bool) -> tuple[set[str], int, list[str] | None]:
    keys: set[str] = set()
    good = 0
    records = 0
    tail = b""
    with open(path, "rb") as f:
        for n, (line, offset) in enumerate(_lines_with_offsets(f), start=1):
            if not line.endswith(b"\n"):
                tail = line
                break
            if b"\0" in line:
                raise OutputFileError(path, f"line {n} holds binary data (a NUL byte)")
            try:
                obj = json.loads(line.decode("utf-8", errors="surrogateescape"))
            except ValueError:
                raise OutputFileError(path, f"line {n} is not JSON") from None
            if not (isinstance(obj, dict) and isinstance(obj.get("path"), str) and isinstance(obj.get("status"), str)):
                raise OutputFileError(path, f"line {n} is not a prediction record of cvbulk (path, status)")
            records += 1
            good = offset
            if collect:
                keys.add(_key(obj["path"]))
    _check_tail(path, tail, _JSONL_LEAD, records)
    return keys, good, None


def _inspect(path: Path, *, collect: bool) -> _Inspection | None:
    """Read ``path`` back whole; None when there is nothing to protect (missing, empty, not a regular file).

    Raises :class:`OutputFileError` when the file is not a prediction file of cvbulk. Never writes.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not stat_mod.S_ISREG(st.st_mode) or st.st_size == 0:
        return None  # /dev/null, a pipe: nothing to read back, nothing to lose
    absolute = os.path.abspath(path)
    cached = _verified.get(absolute)
    if cached is not None and cached.signature == _signature(st) and not collect:
        return cached
    reader = _inspect_jsonl if _is_jsonl(path) else _inspect_csv
    keys, good, columns = reader(path, st.st_size, collect)
    found = _Inspection(keys, good, st.st_size, columns, _signature(st))
    _verified[absolute] = _Inspection(set(), good, st.st_size, columns, found.signature)
    return found


def _cut_tail(path: Path, found: _Inspection) -> bool:
    if found.good >= found.size:
        return False
    with open(path, "r+b") as f:
        f.truncate(found.good)
        f.flush()
        os.fsync(f.fileno())
    _verified.pop(os.path.abspath(path), None)
    return True


def _check_before_write(path: Path, *, append: bool) -> _Inspection | None:
    found = _inspect(path, collect=False)
    if found is not None and append:
        _cut_tail(path, found)
    return found


def check_output_file(path: str | Path) -> None:
    """Raise :class:`OutputFileError` when ``path`` exists and is not a prediction file cvbulk can read
    back (a check a command can run before it sends anything). Never writes; a missing file passes.
    """
    _inspect(Path(path), collect=False)


def _read_csv_header(path: Path) -> list[str] | None:
    with open(path, "rb") as f:
        first = f.readline()
    if not first.endswith(b"\n"):
        return None
    try:
        return next(csv.reader([first.decode("utf-8", errors="surrogateescape")]))
    except (csv.Error, StopIteration):
        return None


def repair_torn_tail(path: str | Path) -> bool:
    """Truncate a partial last record left by a killed writer. True when the file was cut.

    The file is read back first: one that is not ours raises :class:`OutputFileError`, untouched.
    """
    path = Path(path)
    found = _inspect(path, collect=False)
    return found is not None and _cut_tail(path, found)


def existing_keys(path: str | Path) -> set[str]:
    """The image paths (scan keys) an output file already holds (CSV first column, JSONL ``"path"``).

    Reads the whole file back first: a file cvbulk did not write, or cannot read back, raises
    :class:`OutputFileError` and is not modified. Then a torn (partial) last record is cut, so a resumed
    run appends cleanly. A missing or empty file holds nothing.
    """
    path = Path(path)
    found = _inspect(path, collect=True)
    if found is None:
        return set()
    _cut_tail(path, found)
    return found.keys
