"""The emulator's SQLite database: schema, one connection behind one lock, transactions.

Every store method is synchronous and meant to run in a worker thread (``anyio.to_thread``); the
lock makes each method one transaction, so concurrent requests never see or leave half a change.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import TierLimits
from ._errors import ApiError, not_found

__all__ = ["StoreBase", "utcnow", "new_id", "norm_id", "MAX_TAGS_PER_IMAGE", "MAX_REGIONS_PER_IMAGE"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, domain_id TEXT NOT NULL,
  classification_type TEXT, export_platforms TEXT NOT NULL, created TEXT NOT NULL,
  last_modified TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tags (
  id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
  type TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tags_project ON tags(project_id);
CREATE TABLE IF NOT EXISTS images (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, project_id TEXT NOT NULL,
  sha256 TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, format TEXT NOT NULL,
  size INTEGER NOT NULL, created TEXT NOT NULL, metadata TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS images_content ON images(project_id, sha256);
CREATE TABLE IF NOT EXISTS image_tags (
  image_id TEXT NOT NULL, tag_id TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (image_id, tag_id));
CREATE INDEX IF NOT EXISTS image_tags_tag ON image_tags(tag_id);
CREATE TABLE IF NOT EXISTS regions (
  id TEXT PRIMARY KEY, image_id TEXT NOT NULL, tag_id TEXT NOT NULL, left_ REAL NOT NULL,
  top REAL NOT NULL, width REAL NOT NULL, height REAL NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS regions_image ON regions(image_id);
CREATE TABLE IF NOT EXISTS iterations (
  id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
  created TEXT NOT NULL, last_modified TEXT NOT NULL, trained_at TEXT, domain_id TEXT NOT NULL,
  classification_type TEXT, training_type TEXT NOT NULL, budget INTEGER NOT NULL,
  publish_name TEXT, publish_resource_id TEXT, version INTEGER NOT NULL,
  tags TEXT NOT NULL, samples TEXT NOT NULL, performance TEXT, training_seconds REAL);
CREATE INDEX IF NOT EXISTS iterations_project ON iterations(project_id);
CREATE TABLE IF NOT EXISTS predictions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, project_id TEXT NOT NULL,
  iteration_id TEXT NOT NULL, sha256 TEXT NOT NULL, created TEXT NOT NULL, application TEXT,
  result TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS predictions_project ON predictions(project_id);
"""

MAX_TAGS_PER_IMAGE = 100
MAX_REGIONS_PER_IMAGE = 300


def utcnow() -> str:
    # 7 fractional digits, as the service (.NET) writes them: a client parsing 3 breaks here too.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def new_id() -> str:
    return str(uuid.uuid4())


def norm_id(value: Any) -> str:
    """A UUID in its canonical lower-case form, or 400 BadRequestInvalidIds."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise ApiError(400, "BadRequestInvalidIds", f"Invalid id: {str(value)[:64]!r}") from None


class StoreBase:
    """One SQLite connection shared by the worker threads, one transaction at a time."""

    def __init__(self, path: Path, limits: TierLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self._db.execute("PRAGMA busy_timeout=10000")  # another process on the same data dir waits, not fails
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(projects)")}
        if "status" not in columns:  # data folders of older emulators
            self._db.execute("ALTER TABLE projects ADD COLUMN status TEXT NOT NULL DEFAULT 'Succeeded'")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(iterations)")}
        if "custom_base" not in columns:
            self._db.execute("ALTER TABLE iterations ADD COLUMN custom_base TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _project_row(self, db: sqlite3.Connection, project_id: str) -> sqlite3.Row:
        pid = norm_id(project_id)
        row = db.execute("SELECT * FROM projects WHERE id=?", (pid,)).fetchone()
        if row is None:
            raise not_found("Project", pid)
        return row

    if TYPE_CHECKING:  # helpers of the other store parts, joined in ``Store``
        def _known_tags(self, db: sqlite3.Connection, project_id: str) -> dict[str, sqlite3.Row]: ...
        def _tag_counts(self, db: sqlite3.Connection, project_id: str) -> dict[str, int]: ...
        @staticmethod
        def _tag_json(row: sqlite3.Row, image_count: int) -> dict: ...
        def _iteration_row(self, db: sqlite3.Connection, pid: str, iteration_id: str) -> sqlite3.Row: ...

    def _bump(self, db: sqlite3.Connection, project_id: str) -> None:
        db.execute(
            "UPDATE projects SET version=version+1, last_modified=? WHERE id=?", (utcnow(), project_id)
        )
