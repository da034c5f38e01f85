"""The state file: one SQLite row per source file, one transaction per batch outcome.

The journal is what makes a run resumable. Before a batch is sent its files are marked ``sending``
(so a resume knows they may already be on the service and re-sends deterministic bytes, which the
service answers ``OKDuplicate``); once the answer is in, every file of the batch gets its outcome in
one transaction. A run killed with ``kill -9`` at any moment therefore finds, on reopening, every
committed batch complete and no half-written one.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A committed transaction is
in the WAL file (the OS page cache at least) when ``commit`` returns, so it survives the death of
the *process* (``kill -9``, a crash); only a power loss or OS crash can drop the last few commits.
Pass ``synchronous="FULL"`` to fsync the WAL on every commit when that matters too.

SQLite is synchronous: the pipeline calls the journal through ``anyio.to_thread.run_sync``. One
connection is shared by worker threads (``check_same_thread=False``) behind a lock.

Keys never reach this file: the pipeline hands it no credential, and as a guard any field whose
name contains "key" is dropped from the fingerprint and from ``extra`` before it is stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._scrub import scrub_keys
from .errors import StateFileError
from .status import FAILURE_STATUSES, FINAL_OK, RETRY_STATUSES, STATUSES, Status

__all__ = [
    "UPLOADED",
    "DUPLICATE",
    "PREDICTED",
    "EXPORTED",
    "SKIPPED",
    "REJECTED",
    "FAILED",
    "ERROR",
    "SENDING",
    "FINAL_OK",
    "FAILURE_STATUSES",
    "RETRY_STATUSES",
    "STATUSES",
    "JournalEntry",
    "JournalMismatch",
    "Journal",
    "needs_work",
]

# The statuses (one enum for every job: status.py), under the names the jobs have always used.
UPLOADED = Status.UPLOADED
DUPLICATE = Status.DUPLICATE
PREDICTED = Status.PREDICTED
EXPORTED = Status.EXPORTED
SKIPPED = Status.SKIPPED
REJECTED = Status.REJECTED
FAILED = Status.FAILED
ERROR = Status.ERROR
SENDING = Status.SENDING

_SCHEMA_VERSION = "1"
_PAGE = 1000  # rows per page for iterators: memory stays flat, the lock is never held for long
_IN_CHUNK = 500  # bound on "?" parameters in one IN (...) query

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    key      TEXT PRIMARY KEY,
    size     INTEGER,
    mtime_ns INTEGER,
    sha256   TEXT,
    status   TEXT NOT NULL,
    image_id TEXT,
    reason   TEXT,
    fixes    TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    extra    TEXT,
    updated  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_image ON entries (image_id) WHERE image_id IS NOT NULL;
"""
# Two writes per image (the intent, the outcome), each a B-tree change per index: an index on status (counts and
# failures, read once at the end, as fast from the table itself) cost a third of the journal's time and went;
# the image-id index (a duplicate's owner) holds only rows with an image. State files made with the old
# indexes keep them, and read the same.

_COLUMNS = "key, size, mtime_ns, sha256, status, image_id, reason, fixes, attempts, extra, updated"

# Upsert: attempts only grow (mark_sending counts them; an outcome built with attempts=0 must not
# reset the count).
_UPSERT = f"""
INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,
    status = excluded.status, image_id = excluded.image_id, reason = excluded.reason,
    fixes = excluded.fixes, attempts = MAX(entries.attempts, excluded.attempts),
    extra = excluded.extra, updated = excluded.updated
"""
# For an intent, the attempt count is the stored one plus one.
_UPSERT_SENDING = _UPSERT.replace(
    "attempts = MAX(entries.attempts, excluded.attempts)",
    "attempts = MAX(entries.attempts + 1, excluded.attempts)",
)


class JournalMismatch(StateFileError, ValueError):
    """The state file belongs to another job or another source (project, root, ...)."""


@dataclass(frozen=True, slots=True)  # two per image on the hot path: slots make one ~3x faster
class JournalEntry:
    """One file's recorded state. ``key`` is the file's posix path relative to the root."""

    key: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str
    image_id: str | None = None
    reason: str | None = None
    fixes: tuple[str, ...] = ()
    attempts: int = 0
    extra: dict[str, Any] | None = None
    updated: float | None = field(default=None, compare=False)

    @property
    def path(self) -> str:
        """The relative path (same as ``key``; reports speak of paths)."""
        return self.key


def needs_work(entry: JournalEntry | None, size: int, mtime_ns: int) -> bool:
    """The resume rule: must the file with this size and mtime be processed again?

    Unknown file, ``error`` or ``sending`` -> yes. Success-like, ``rejected`` or ``failed`` -> only
    when the file changed on disk (size or mtime differ), since the same bytes would meet the same
    fate.
    """
    if entry is None:
        return True
    if entry.status in RETRY_STATUSES or entry.status not in STATUSES:
        return True
    return entry.size != size or entry.mtime_ns != mtime_ns


def _one_line(text: str | None) -> str | None:
    if text is None:
        return None
    return " ".join(str(text).split()) or None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _describe_difference(stored: Any, wanted: Any) -> str:
    """Name the first fingerprint field that differs, for a one-line error."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for name in sorted(set(stored) | set(wanted)):
            if stored.get(name) != wanted.get(name):
                return f"{name} is {stored.get(name)!r} in the state file, {wanted.get(name)!r} now"
    return f"fingerprint {_canonical(stored)} in the state file, {_canonical(wanted)} now"


class Journal:
    """The SQLite state file of one job. Open it with :meth:`Journal.open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, job: str, fingerprint: dict[str, Any]):
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.path = path
        self.job = job
        self.fingerprint = fingerprint

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        job: str,
        fingerprint: Mapping[str, Any],
        synchronous: str = "NORMAL",
    ) -> Journal:
        """Open or create the state file at ``path`` for ``job`` with this ``fingerprint``.

        Raises :class:`JournalMismatch` when the file was written by another job or for another
        fingerprint (another project, another root ...), so two runs never mix their states.
        """
        if synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        path = Path(path)
        fp = scrub_keys(dict(fingerprint))
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            problem = cls._prepare(conn, job, fp, synchronous.upper())
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalMismatch(f"state file {path} is not a cvbulk state file ({exc})") from None
        except BaseException:
            conn.close()
            raise
        if problem is not None:
            conn.close()
            raise JournalMismatch(f"state file {path} is for another run: {problem}")
        return cls(conn, path, job, fp)

    @staticmethod
    def _prepare(conn: sqlite3.Connection, job: str, fp: dict[str, Any], synchronous: str) -> str | None:
        """Set the pragmas, create or check the schema and meta; the mismatch, if any."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            # Some other SQLite database (the emulator's, a mistyped path): never touch it.
            return "it is another SQLite database, not a cvbulk state file"
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
            if not meta:
                conn.executemany(
                    "INSERT INTO meta (name, value) VALUES (?, ?)",
                    [
                        ("schema", _SCHEMA_VERSION),
                        ("job", job),
                        ("fingerprint", _canonical(fp)),
                        ("created", str(time.time())),
                    ],
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if not meta:
            return None
        if meta.get("schema") != _SCHEMA_VERSION:
            return f"schema version {meta.get('schema')!r}, this cvbulk writes {_SCHEMA_VERSION!r}"
        if meta.get("job") != job:
            return f"it belongs to job {meta.get('job')!r}, not {job!r}"
        stored = json.loads(meta.get("fingerprint", "null"))
        wanted = json.loads(_canonical(fp))
        if stored != wanted:
            return _describe_difference(stored, wanted)
        return None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"journal {self.path} is closed")
        return self._conn

    # -- reading ---------------------------------------------------------------------------------

    def get(self, key: str) -> JournalEntry | None:
        """The recorded state of ``key``, or None when the file was never seen."""
        with self._lock:
            row = self._db().execute(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else _entry(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, JournalEntry]:
        """The recorded states of those ``keys`` that are known (unknown keys are absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, JournalEntry] = {}
        with self._lock:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self._db().execute(
                    f"SELECT {_COLUMNS} FROM entries WHERE key IN ({marks})", chunk
                ):
                    found[row[0]] = _entry(row)
        return found

    def owners(self, image_ids: Iterable[str]) -> dict[str, str]:
        """image id -> key of the file recorded as having uploaded it (ids no file uploaded are absent).
        An image has one owner: of two twins, the one recorded ``uploaded``; the other is its duplicate."""
        wanted = [i for i in dict.fromkeys(image_ids) if i]
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for image_id, key in self._db().execute(
                    f"SELECT image_id, MIN(key) FROM entries WHERE status = ? AND image_id IN ({marks}) "
                    "GROUP BY image_id",
                    [UPLOADED, *chunk],
                ):
                    found[image_id] = key
        return found

    def counts(self) -> dict[str, int]:
        """Number of files per status."""
        with self._lock:
            rows = self._db().execute("SELECT status, COUNT(*) FROM entries GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def entries(self, status: str | Iterable[str] | None = None) -> Iterator[JournalEntry]:
        """Every entry (or those with the given status or statuses), in key order.

        Reads page by page, so memory stays flat and writers from other threads are not held up;
        rows written meanwhile may or may not be seen.
        """
        statuses: list[str] | None
        if status is None:
            statuses = None
        elif isinstance(status, str):
            statuses = [status]
        else:
            statuses = sorted(set(status))
        after: str | None = None
        while True:
            # Keyset pagination: each page starts after the last key seen, using the index.
            conditions: list[str] = []
            params: list[Any] = []
            if after is not None:
                conditions.append("key > ?")
                params.append(after)
            if statuses is not None:
                conditions.append(f"status IN ({','.join('?' * len(statuses))})")
                params += statuses
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = f"SELECT {_COLUMNS} FROM entries{where} ORDER BY key LIMIT ?"
            params.append(_PAGE)
            with self._lock:
                rows = self._db().execute(sql, params).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def annotated(self) -> Iterator[JournalEntry]:
        """Entries with fixes or a note (``extra["note"]``), in key order, page by page.

        Most rows carry an ``extra`` that is no annotation (``{"via": "url"}`` on every image a container sent by
        URL): they are left out by the query, not read and parsed one by one at the end of every run. ``extra``
        is stored as canonical JSON, where the text ``"note":`` can only be a key (a quote inside a value is
        escaped); the caller still reads ``note`` from the parsed ``extra``.
        """
        after = ""
        while True:
            with self._lock:
                rows = self._db().execute(
                    f"SELECT {_COLUMNS} FROM entries WHERE key > ? "
                    """AND (fixes != '[]' OR instr(extra, '"note":') > 0) ORDER BY key LIMIT ?""",
                    (after, _PAGE),
                ).fetchall()
            for row in rows:
                yield _entry(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def failures(self) -> Iterator[JournalEntry]:
        """Entries that ended rejected, failed or in error, in key order."""
        return self.entries(FAILURE_STATUSES)

    # -- writing ---------------------------------------------------------------------------------

    def record(self, entries: Sequence[JournalEntry]) -> None:
        """Write the outcomes of one batch in one transaction (upsert by key)."""
        if not entries:
            return
        now = time.time()
        rows = [_row(e, now) for e in entries]
        with self._lock:
            self._transaction(lambda: self._db().executemany(_UPSERT, rows))

    def mark_sending(self, keys: Iterable[str | JournalEntry]) -> None:
        """Write the intent to send these files, in one transaction, before the batch goes out.

        A ``JournalEntry`` is stored whole (with status ``sending``); a bare key updates the
        existing row, or creates one with unknown size and mtime. Each call counts one attempt.
        """
        now = time.time()
        full: list[tuple[Any, ...]] = []
        bare: list[str] = []
        for item in keys:
            if isinstance(item, JournalEntry):
                full.append(_row(item, now, attempts_delta=1, sending=True))
            else:
                bare.append(item)

        def write() -> None:
            if full:
                self._db().executemany(_UPSERT_SENDING, full)
            if bare:
                self._db().executemany(
                    f"INSERT INTO entries ({_COLUMNS}) VALUES (?, NULL, NULL, NULL, ?, NULL, NULL, "
                    "'[]', 1, NULL, ?) ON CONFLICT (key) DO UPDATE SET status = excluded.status, "
                    "reason = NULL, attempts = entries.attempts + 1, updated = excluded.updated",
                    [(k, SENDING, now) for k in bare],
                )

        if full or bare:
            with self._lock:
                self._transaction(write)

    def _transaction(self, work: Any) -> None:
        # Caller holds the lock. BEGIN IMMEDIATE takes the write lock up front, so a second
        # process on the same file waits (busy_timeout) instead of failing halfway.
        self._db().execute("BEGIN IMMEDIATE")
        try:
            work()
        except BaseException:
            self._db().execute("ROLLBACK")
            raise
        self._db().execute("COMMIT")

    # -- life cycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the state file (idempotent). Checkpoints the WAL into the main file."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # another process still reading: the WAL is checkpointed later, nothing lost
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal(path={str(self.path)!r}, job={self.job!r})"


# The stored text of an ``extra``, by its items: nearly every row of a run carries one of a few (``{"via": "url"}``),
# and scrubbing and encoding each again cost ~20 us a row, two rows an image.
_EXTRA_TEXT: dict[tuple[tuple[Any, Any], ...], str] = {}


def _extra_text(extra: Mapping[str, Any]) -> str:
    try:
        items = tuple(extra.items())
        text = _EXTRA_TEXT.get(items)
    except TypeError:  # a list or a dict among the values: not a key
        return _canonical(scrub_keys(extra))
    if text is None:
        text = _canonical(scrub_keys(extra))
        if len(_EXTRA_TEXT) < 256:
            _EXTRA_TEXT[items] = text
    return text


def _row(e: JournalEntry, now: float, attempts_delta: int = 0, *, sending: bool = False) -> tuple[Any, ...]:
    """The entry as a row; ``sending``: as its intent (status ``sending``, no reason)."""
    if e.status not in STATUSES:
        raise ValueError(f"unknown status {e.status!r} for {e.key!r}")
    extra = None if e.extra is None else _extra_text(e.extra)
    return (
        e.key,
        e.size,
        e.mtime_ns,
        e.sha256,
        SENDING if sending else e.status,
        e.image_id,
        None if sending else _one_line(e.reason),
        json.dumps(list(e.fixes), ensure_ascii=False) if e.fixes else "[]",
        e.attempts + attempts_delta,
        extra,
        now,
    )


_KNOWN = frozenset(s.value for s in Status)


def _entry(row: Sequence[Any]) -> JournalEntry:
    key, size, mtime_ns, sha256, status, image_id, reason, fixes, attempts, extra, updated = row
    return JournalEntry(
        key=key,
        size=size,
        mtime_ns=mtime_ns,
        sha256=sha256,
        status=Status(status) if status in _KNOWN else status,
        image_id=image_id,
        reason=reason,
        fixes=tuple(json.loads(fixes)) if fixes else (),
        attempts=attempts,
        extra=json.loads(extra) if extra else None,
        updated=updated,
    )
