"""Resume for ``cvbulk predict``: which images are done, which changed since they were scored, and one row per path.

An image with a row in the output is done unless the file changed since: the journal's ``(size, mtime_ns)`` for
it (a blob's ``mtime_ns`` is its ETag's number) differs from what the scan or listing gives now, or its last
attempt was a transient error (:func:`journal.needs_work`). A changed image is scored again and its new row
appended; the old row is removed by compacting the output at the end of the run: "last row of a path wins".
A row the journal does not know (a run killed between writing the row and journalling it) stays done, as before:
there is nothing to compare it with.

Crash safety. Before the first re-scored row can be appended, a mark file ``<output>.compact`` records where this
run's rows start (the output's size when the run began) and which file that offset belongs to (its inode). The
compaction copies the rows before that offset, less those of the paths that have a row after it, then the rows
after it byte for byte, into a temporary file in the same folder, and renames it over the output; then the mark
goes. A ``kill -9`` anywhere leaves the old output whole (with the mark, so the next run compacts first) or the
compacted one (whose new inode makes a left-over mark stale). Rows of other paths are never rewritten, the CSV
header stays the first line, and a detection image's several rows go or stay together.
"""

from __future__ import annotations

import csv
import glob
import json
import re
from collections.abc import AsyncIterator
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ._atomic import atomic_write_bytes, atomic_writer
from .journal import Journal, JournalEntry, needs_work
from .names import key_for
from .output import JSONL_SUFFIXES, existing_keys, unescape_cell
from .scan import ScanProblem

__all__ = ["NEW", "DONE", "CHANGED", "PredictResume", "compact_output", "mark_path"]

NEW = "new"  # no row yet: scored
DONE = "done"  # a row, and the file is as it was scored: skipped
CHANGED = "changed"  # a row, but the file changed since (or its last attempt was a transient error): scored again

_LOOKUP_CHUNK = 500  # journal rows looked up per worker-thread hop (one IN query)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_COPY = 1 << 20


def mark_path(output: Path) -> Path:
    """The mark file of an output: ``results.csv`` -> ``results.csv.compact``."""
    return output.with_name(output.name + ".compact")


class PredictResume:
    """The resume of one predict run: ``done`` (the paths with a row), the verdict on each scanned image, and the
    compaction at the end. Open it with :meth:`open` before the output's writer is opened."""

    def __init__(self, output: Path, journal: Journal, done: set[str], base: int) -> None:
        self.output = output
        self.journal = journal
        self.done = done
        self.base = base  # the output's size when this run began: its own rows come after
        self.rescored: set[str] = set()  # paths scored again because they changed (this run)
        self.rows_removed = 0  # old rows the compactions removed (this run)
        self._marked = False

    @classmethod
    async def open(cls, output: Path, journal: Journal, appending: bool) -> PredictResume:
        """Read the paths the output holds (``existing_keys``: checks the file is ours, cuts a torn tail), and
        compact it first if a run was killed between appending re-scored rows and compacting."""
        return await anyio.to_thread.run_sync(cls._open, output, journal, appending)

    @classmethod
    def _open(cls, output: Path, journal: Journal, appending: bool) -> PredictResume:
        done = existing_keys(output) if appending else set()
        removed = _compact_left_over(output) if appending else 0
        mark = mark_path(output)
        if mark.exists():  # stale (the output compacted, replaced or gone): it speaks of no file there is now
            mark.unlink()
        _drop_temporaries(output)
        base = output.stat().st_size if appending else 0
        resume = cls(output, journal, done, base)
        resume.rows_removed = removed
        return resume

    async def verdicts(self, entries: AsyncIterator[Any]) -> AsyncIterator[tuple[Any, str]]:
        """Each scanned entry with its verdict (NEW, DONE or CHANGED). An entry without a row passes at once; those
        with a row wait in chunks for one journal query each, so a resumed run of millions makes thousands."""
        held: list[Any] = []
        async for entry in entries:
            if entry.relpath not in self.done:
                yield entry, NEW
            elif isinstance(entry, ScanProblem):
                yield entry, DONE  # no image now: its row stays what it is
            else:
                held.append(entry)
                if len(held) >= _LOOKUP_CHUNK:
                    async for pair in self._judge(held):
                        yield pair
                    held = []
        if held:
            async for pair in self._judge(held):
                yield pair

    async def _judge(self, held: list[Any]) -> AsyncIterator[tuple[Any, str]]:
        known = await anyio.to_thread.run_sync(self.journal.get_many, [e.relpath for e in held])
        for entry in held:
            if not _changed(known.get(entry.relpath), entry.size, entry.mtime_ns):
                yield entry, DONE
                continue
            if not self._marked:
                # Before the first re-scored row can be appended: a kill from here on leaves the mark.
                await anyio.to_thread.run_sync(self._mark)
            self.rescored.add(entry.relpath)
            yield entry, CHANGED

    def _mark(self) -> None:
        st = self.output.stat()
        text = json.dumps({"inode": st.st_ino, "offset": self.base})
        atomic_write_bytes(mark_path(self.output), text.encode())
        self._marked = True

    async def finish(self) -> int:
        """Once the writer is closed: compact the output when this run re-scored a path. Old rows removed."""
        if not self._marked:
            return 0
        return await anyio.to_thread.run_sync(self._finish)

    def _finish(self) -> int:
        removed = compact_output(self.output, self.base, only=self.rescored)
        mark_path(self.output).unlink(missing_ok=True)
        self._marked = False
        self.rows_removed += removed
        return removed


def _changed(prior: JournalEntry | None, size: int, mtime_ns: int) -> bool:
    """Must an image that has a row be scored again? Not when the journal does not know it (see the module doc)."""
    if prior is None:
        return False
    # The journal stores 0 as NULL (``size or None``): compare what it would store.
    return needs_work(prior, size or None, mtime_ns or None)  # type: ignore[arg-type]


def _compact_left_over(output: Path) -> int:
    """Compact what a killed run left: only with a mark that speaks of this very file."""
    try:
        mark = json.loads(mark_path(output).read_text())
        inode, offset = int(mark["inode"]), int(mark["offset"])
        st = output.stat()
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    if st.st_ino != inode or not 0 < offset <= st.st_size:
        return 0
    return compact_output(output, offset)


def _drop_temporaries(output: Path) -> None:
    """A compaction killed before its rename leaves its temporary file: remove it."""
    for left in output.parent.glob(f".{glob.escape(output.name)}.*.compacting"):
        left.unlink(missing_ok=True)


# -- compaction -----------------------------------------------------------------------------------


def compact_output(output: Path, offset: int, *, only: set[str] | None = None) -> int:
    """Keep one row per path, the newest: rows before ``offset`` whose path has a row after it are removed.

    ``only``: the paths that can have two (this run's re-scored ones); None: any path found after ``offset``. Reads
    the file twice, streaming; holds only those paths. The file is replaced atomically (a temporary file in the
    same folder) and only when a row goes; every kept row is copied byte for byte. The number of rows removed.
    """
    jsonl = output.suffix.lower() in JSONL_SUFFIXES
    newer: set[str] = set()
    with open(output, "rb") as f:
        f.seek(offset)
        for line in f:
            if line.endswith(b"\n"):
                path = _row_path(line, jsonl)
                if only is None or path in only:
                    newer.add(path)
    if not newer:
        return 0
    removed = 0
    try:
        with atomic_writer(output, suffix=".compacting", fsync=True, keep_mode=True) as out, \
                open(output, "rb", buffering=_COPY) as f:
            at = 0
            if not jsonl:  # a CSV's header: its first cell is no path
                header = f.readline()
                out.write(header)
                at = len(header)
            while at < offset:
                line = f.readline()
                if not line:
                    break
                at += len(line)
                if _row_path(line, jsonl) in newer:
                    removed += 1
                else:
                    out.write(line)
            if not removed:
                raise _Unchanged  # the output stays as it is (not even a new inode)
            # This run's rows (and a torn tail, if any) as they are.
            while chunk := f.read(_COPY):
                out.write(chunk)
    except _Unchanged:
        return 0
    return removed


class _Unchanged(Exception):
    """No row to remove: the compaction's temporary file is dropped, the output not replaced."""


def _row_path(line: bytes, jsonl: bool) -> str:
    """The path (scan key) of one record, read as ``existing_keys`` reads it."""
    text = line.decode("utf-8", errors="surrogateescape")
    if jsonl:
        if text.startswith('{"path":"'):
            path = scanstring(text, 9)[0]
        else:
            path = json.loads(text).get("path", "")
    elif text.startswith('"'):
        path = unescape_cell(next(csv.reader([text]))[0])
    else:
        path = unescape_cell(text[: text.find(",")])
    # A file an older cvbulk wrote may hold a raw undecodable name: read it as today's key.
    return key_for(path) if _SURROGATE.search(path) else path
