"""The emulator's records in SQLite (WAL), behind one lock.

Every method is synchronous and meant to run in a worker thread (``anyio.to_thread``); the lock
makes each method one transaction, so concurrent requests never see or leave half a change.
Image bytes live in the ``BlobStore``; rows hold their SHA-256.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._config import TierLimits
from ._domains import DEFAULT_DOMAIN_ID, domain_by_id
from ._errors import ApiError, not_found

__all__ = ["Store", "NewImage", "utcnow", "new_id"]

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
"""

MAX_TAGS_PER_IMAGE = 100
MAX_REGIONS_PER_IMAGE = 300


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


def _norm_id(value: Any) -> str:
    """A UUID in its canonical lower-case form, or 400 BadRequestInvalidIds."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise ApiError(400, "BadRequestInvalidIds", f"Invalid id: {str(value)[:64]!r}") from None


@dataclass
class NewImage:
    """One image of a create batch, already hashed and stored as a blob (or already refused)."""

    source_url: str
    status: str | None = None  # a refusal found before the store (ErrorImageFormat, ErrorSource...)
    sha256: str = ""
    width: int = 0
    height: int = 0
    format: str = ""
    size: int = 0
    tag_ids: Sequence[str] = ()
    regions: Sequence[dict] = field(default_factory=list)


class Store:
    def __init__(self, path: Path, limits: TierLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._lock.acquire()
                store._db.execute("BEGIN IMMEDIATE")
                return store._db

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    store._db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    store._lock.release()

        return _Tx()

    def _project_row(self, db: sqlite3.Connection, project_id: str) -> sqlite3.Row:
        pid = _norm_id(project_id)
        row = db.execute("SELECT * FROM projects WHERE id=?", (pid,)).fetchone()
        if row is None:
            raise not_found("Project", pid)
        return row

    def _bump(self, db: sqlite3.Connection, project_id: str) -> None:
        db.execute(
            "UPDATE projects SET version=version+1, last_modified=? WHERE id=?", (utcnow(), project_id)
        )

    # -- projects ---------------------------------------------------------------------------------
    @staticmethod
    def _project_json(row: sqlite3.Row) -> dict:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "settings": {
                "domainId": row["domain_id"],
                "classificationType": row["classification_type"],
                "targetExportPlatforms": json.loads(row["export_platforms"]),
                "useNegativeSet": True,
                "imageProcessingSettings": {"augmentationMethods": {}},
            },
            "created": row["created"],
            "lastModified": row["last_modified"],
            "thumbnailUri": None,
            "drModeEnabled": False,
            "status": "Succeeded",
        }

    def create_project(
        self,
        name: str,
        description: str = "",
        domain_id: str | None = None,
        classification_type: str | None = None,
        export_platforms: Sequence[str] = (),
        project_id: str | None = None,
    ) -> dict:
        if not name or len(name) > 1024:
            raise ApiError(400, "BadRequestProjectName", "Project name is empty or too long")
        domain = domain_by_id(_norm_id(domain_id or DEFAULT_DOMAIN_ID))
        if domain is None:
            raise ApiError(400, "BadRequestProjectUnknownDomain", f"Unknown domain: {domain_id}")
        if domain["type"] == "ObjectDetection":
            classification_type = None
        else:
            classification_type = classification_type or "Multiclass"
            if classification_type not in ("Multiclass", "Multilabel"):
                raise ApiError(
                    400, "BadRequestProjectUnknownClassification",
                    f"Unknown classification type: {classification_type}",
                )
        for platform in export_platforms:
            if platform not in ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK", "OpenVino"):
                raise ApiError(400, "BadRequestProjectUnsupportedExportPlatform", f"Unknown platform {platform}")
        now = utcnow()
        with self._tx() as db:
            count = db.execute("SELECT COUNT(*) FROM projects").fetchone()[0]
            if self.limits.max_projects is not None and count >= self.limits.max_projects:
                raise ApiError(
                    400, "BadRequestExceedProjectLimit",
                    f"Project limit of {self.limits.max_projects} reached for the {self.limits.name} tier",
                )
            pid = project_id or new_id()
            db.execute(
                "INSERT INTO projects VALUES (?,?,?,?,?,?,?,?,0)",
                (pid, name, description or "", domain["id"], classification_type,
                 json.dumps(list(export_platforms)), now, now),
            )
            return self._project_json(self._project_row(db, pid))

    def get_projects(self) -> list[dict]:
        with self._tx() as db:
            rows = db.execute("SELECT * FROM projects ORDER BY created").fetchall()
            return [self._project_json(r) for r in rows]

    def get_project(self, project_id: str) -> dict:
        with self._tx() as db:
            return self._project_json(self._project_row(db, project_id))

    def project_kind(self, project_id: str) -> str:
        """Multiclass, Multilabel or ObjectDetection."""
        with self._tx() as db:
            row = self._project_row(db, project_id)
            return row["classification_type"] or "ObjectDetection"

    def update_project(self, project_id: str, body: dict) -> dict:
        with self._tx() as db:
            row = self._project_row(db, project_id)
            name = body.get("name") or row["name"]
            description = body.get("description")
            description = row["description"] if description is None else description
            settings = body.get("settings") or {}
            domain_id = row["domain_id"]
            ctype = row["classification_type"]
            if settings.get("domainId"):
                domain = domain_by_id(_norm_id(settings["domainId"]))
                if domain is None:
                    raise ApiError(400, "BadRequestProjectUnknownDomain", "Unknown domain")
                old = domain_by_id(domain_id)
                if old and old["type"] != domain["type"]:
                    raise ApiError(
                        400, "BadRequestProjectUnsupportedDomainTypeChange",
                        "Changing between classification and detection domains is not supported",
                    )
                domain_id = domain["id"]
            if settings.get("classificationType") and ctype is not None:
                ctype = settings["classificationType"]
            platforms = settings.get("targetExportPlatforms")
            db.execute(
                "UPDATE projects SET name=?, description=?, domain_id=?, classification_type=?, "
                "export_platforms=?, last_modified=? WHERE id=?",
                (name, description, domain_id, ctype,
                 json.dumps(platforms) if platforms is not None else row["export_platforms"],
                 utcnow(), row["id"]),
            )
            return self._project_json(self._project_row(db, row["id"]))

    def delete_project(self, project_id: str) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            image_ids = "SELECT id FROM images WHERE project_id=?"
            db.execute(f"DELETE FROM image_tags WHERE image_id IN ({image_ids})", (pid,))
            db.execute(f"DELETE FROM regions WHERE image_id IN ({image_ids})", (pid,))
            for table in ("images", "tags", "iterations"):
                db.execute(f"DELETE FROM {table} WHERE project_id=?", (pid,))
            db.execute("DELETE FROM projects WHERE id=?", (pid,))

    # -- tags -----------------------------------------------------------------------------------
    @staticmethod
    def _tag_json(row: sqlite3.Row, image_count: int) -> dict:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "type": row["type"],
            "imageCount": image_count,
        }

    def _tag_counts(self, db: sqlite3.Connection, project_id: str) -> dict[str, int]:
        rows = db.execute(
            "SELECT t.id, (SELECT COUNT(DISTINCT image_id) FROM ("
            " SELECT image_id FROM image_tags WHERE tag_id=t.id UNION"
            " SELECT image_id FROM regions WHERE tag_id=t.id)) FROM tags t WHERE t.project_id=?",
            (project_id,),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def get_tags(self, project_id: str, iteration_id: str | None = None) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            if iteration_id:
                it = self._iteration_row(db, pid, iteration_id)
                return json.loads(it["tags"])
            counts = self._tag_counts(db, pid)
            rows = db.execute("SELECT * FROM tags WHERE project_id=? ORDER BY created, rowid", (pid,))
            return [self._tag_json(r, counts.get(r["id"], 0)) for r in rows]

    def _tag_row(self, db: sqlite3.Connection, project_id: str, tag_id: str) -> sqlite3.Row:
        tid = _norm_id(tag_id)
        row = db.execute("SELECT * FROM tags WHERE id=? AND project_id=?", (tid, project_id)).fetchone()
        if row is None:
            raise not_found("Tag", tid)
        return row

    def get_tag(self, project_id: str, tag_id: str) -> dict:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._tag_row(db, pid, tag_id)
            return self._tag_json(row, self._tag_counts(db, pid).get(row["id"], 0))

    @staticmethod
    def _check_tag(db, project_id: str, name: str, tag_type: str, exclude: str | None = None) -> None:
        if not name or len(name) > 256:
            raise ApiError(400, "BadRequestTagName", "Tag name is empty or too long")
        if tag_type not in ("Regular", "Negative", "GeneralProduct"):
            raise ApiError(400, "BadRequestTagType", f"Unknown tag type: {tag_type}")
        clash = db.execute(
            "SELECT id FROM tags WHERE project_id=? AND lower(name)=lower(?) AND id IS NOT ?",
            (project_id, name, exclude),
        ).fetchone()
        if clash is not None:
            raise ApiError(400, "BadRequestTagNameNotUnique", f"Tag name already exists: {name}")
        if tag_type in ("Negative", "GeneralProduct"):
            other = db.execute(
                "SELECT id FROM tags WHERE project_id=? AND type=? AND id IS NOT ?",
                (project_id, tag_type, exclude),
            ).fetchone()
            if other is not None:
                code = "BadRequestMultipleNegativeTag" if tag_type == "Negative" else "BadRequestMultipleGeneralProductTag"
                raise ApiError(400, code, f"A project has at most one {tag_type} tag")

    def create_tag(self, project_id: str, name: str, description: str = "", tag_type: str = "Regular",
                   tag_id: str | None = None) -> dict:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            self._check_tag(db, pid, name, tag_type)
            count = db.execute("SELECT COUNT(*) FROM tags WHERE project_id=?", (pid,)).fetchone()[0]
            limit = self.limits.max_tags_per_project
            if limit is not None and count >= limit:
                raise ApiError(
                    400, "BadRequestExceedTagPerProjectLimit",
                    f"Tag limit of {limit} per project reached for the {self.limits.name} tier",
                )
            tid = tag_id or new_id()
            db.execute("INSERT INTO tags VALUES (?,?,?,?,?,?)", (tid, pid, name, description or "", tag_type, utcnow()))
            return self._tag_json(self._tag_row(db, pid, tid), 0)

    def update_tag(self, project_id: str, tag_id: str, body: dict) -> dict:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._tag_row(db, pid, tag_id)
            name = body.get("name") or row["name"]
            description = body.get("description")
            description = row["description"] if description is None else description
            tag_type = body.get("type") or row["type"]
            self._check_tag(db, pid, name, tag_type, exclude=row["id"])
            db.execute("UPDATE tags SET name=?, description=?, type=? WHERE id=?", (name, description, tag_type, row["id"]))
            self._bump(db, pid)
            return self._tag_json(self._tag_row(db, pid, row["id"]), self._tag_counts(db, pid).get(row["id"], 0))

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tid = self._tag_row(db, pid, tag_id)["id"]
            db.execute("DELETE FROM image_tags WHERE tag_id=?", (tid,))
            db.execute("DELETE FROM regions WHERE tag_id=?", (tid,))
            db.execute("DELETE FROM tags WHERE id=?", (tid,))
            self._bump(db, pid)

    def _known_tags(self, db, project_id: str) -> dict[str, sqlite3.Row]:
        return {r["id"]: r for r in db.execute("SELECT * FROM tags WHERE project_id=?", (project_id,))}

    # -- images -----------------------------------------------------------------------------------
    def add_images(self, project_id: str, items: Sequence[NewImage], tag_ids: Sequence[str] = (),
                   metadata: dict | None = None) -> list[tuple[str, str, dict | None]]:
        """Create images; one (sourceUrl, status, image record or None) per item, in order."""
        now = utcnow()
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tags = self._known_tags(db, pid)
            batch_tags = [_norm_id(t) for t in tag_ids]
            for tid in batch_tags:
                if tid not in tags:
                    raise not_found("Tag", tid)
            count = db.execute("SELECT COUNT(*) FROM images WHERE project_id=?", (pid,)).fetchone()[0]
            limit = self.limits.max_images_per_project
            results: list[tuple[str, str, str | None]] = []
            changed = False
            for item in items:
                if item.status:
                    results.append((item.source_url, item.status, None))
                    continue
                image_tags = list(dict.fromkeys(batch_tags + [_norm_id(t) for t in item.tag_ids]))
                regions = [self._check_region(r, tags) for r in item.regions]
                if any(t not in tags for t in image_tags) or any(r is None for r in regions):
                    results.append((item.source_url, "ErrorUnknown", None))
                    continue
                region_tags = {r["tagId"] for r in regions}
                all_tags = set(image_tags) | region_tags
                if len(all_tags) > MAX_TAGS_PER_IMAGE:
                    results.append((item.source_url, "ErrorTagLimitExceed", None))
                    continue
                if len(regions) > MAX_REGIONS_PER_IMAGE:
                    results.append((item.source_url, "ErrorRegionLimitExceed", None))
                    continue
                types = {tags[t]["type"] for t in all_tags}
                if "Negative" in types and len(types) > 1:
                    results.append((item.source_url, "ErrorNegativeAndRegularTagOnSameImage", None))
                    continue
                existing = db.execute(
                    "SELECT id FROM images WHERE project_id=? AND sha256=?", (pid, item.sha256)
                ).fetchone()
                if existing is not None:
                    results.append((item.source_url, "OKDuplicate", existing[0]))
                    continue
                if limit is not None and count >= limit:
                    results.append((item.source_url, "ErrorLimitExceed", None))
                    continue
                image_id = new_id()
                db.execute(
                    "INSERT INTO images (id, project_id, sha256, width, height, format, size, created, metadata)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (image_id, pid, item.sha256, item.width, item.height, item.format, item.size, now,
                     json.dumps(metadata) if metadata else None),
                )
                db.executemany(
                    "INSERT INTO image_tags VALUES (?,?,?)", [(image_id, t, now) for t in image_tags]
                )
                db.executemany(
                    "INSERT INTO regions VALUES (?,?,?,?,?,?,?,?)",
                    [(new_id(), image_id, r["tagId"], r["left"], r["top"], r["width"], r["height"], now)
                     for r in regions],
                )
                count += 1
                changed = True
                results.append((item.source_url, "OK", image_id))
            if changed:
                self._bump(db, pid)
            records = self._image_records(db, [r[2] for r in results if r[2]])
            return [(src, status, records.get(iid) if iid else None) for src, status, iid in results]

    @staticmethod
    def _check_region(region: dict, tags: dict) -> dict | None:
        try:
            out = {
                "tagId": _norm_id(region.get("tagId")),
                "left": float(region["left"]),
                "top": float(region["top"]),
                "width": float(region["width"]),
                "height": float(region["height"]),
            }
        except (KeyError, TypeError, ValueError, ApiError):
            return None
        if out["tagId"] not in tags:
            return None
        return out

    def _image_records(self, db, image_ids: Iterable[str]) -> dict[str, dict]:
        """Image records (with sha256 in ``_sha``, turned into URIs by the view), by id."""
        ids = list(dict.fromkeys(image_ids))
        out: dict[str, dict] = {}
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in db.execute(f"SELECT * FROM images WHERE id IN ({marks})", chunk):
                rec = {
                    "id": r["id"], "created": r["created"], "width": r["width"], "height": r["height"],
                    "_sha": r["sha256"], "tags": [], "regions": [],
                }
                if r["metadata"]:
                    rec["metadata"] = json.loads(r["metadata"])
                out[r["id"]] = rec
            for r in db.execute(
                "SELECT it.image_id, it.tag_id, it.created, t.name FROM image_tags it JOIN tags t"
                f" ON t.id=it.tag_id WHERE it.image_id IN ({marks}) ORDER BY it.rowid", chunk,
            ):
                out[r[0]]["tags"].append({"tagId": r[1], "tagName": r[3], "created": r[2]})
            for r in db.execute(
                "SELECT r.*, t.name FROM regions r JOIN tags t ON t.id=r.tag_id"
                f" WHERE r.image_id IN ({marks}) ORDER BY r.rowid", chunk,
            ):
                out[r["image_id"]]["regions"].append({
                    "regionId": r["id"], "tagName": r["name"], "created": r["created"], "tagId": r["tag_id"],
                    "left": r["left_"], "top": r["top"], "width": r["width"], "height": r["height"],
                })
        return out

    def _image_filter(self, db, pid: str, tagging_status: str | None, tag_ids: Sequence[str]) -> tuple[str, list]:
        tagged = ("EXISTS (SELECT 1 FROM image_tags it WHERE it.image_id=i.id) OR "
                  "EXISTS (SELECT 1 FROM regions r WHERE r.image_id=i.id)")
        where, args = ["i.project_id=?"], [pid]
        status = (tagging_status or "All").lower()
        if status == "tagged":
            where.append(f"({tagged})")
        elif status == "untagged":
            where.append(f"NOT ({tagged})")
        elif status != "all":
            raise ApiError(400, "BadRequestInvalid", f"Unknown taggingStatus: {tagging_status}")
        if tag_ids:
            ids = [_norm_id(t) for t in tag_ids]
            marks = ",".join("?" * len(ids))
            where.append(
                f"(EXISTS (SELECT 1 FROM image_tags it WHERE it.image_id=i.id AND it.tag_id IN ({marks})) OR "
                f"EXISTS (SELECT 1 FROM regions r WHERE r.image_id=i.id AND r.tag_id IN ({marks})))"
            )
            args += ids + ids
        return " AND ".join(where), args

    def get_images(self, project_id: str, *, tagging_status: str | None = None, tag_ids: Sequence[str] = (),
                   order_by: str | None = None, take: int = 50, skip: int = 0) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            where, args = self._image_filter(db, pid, tagging_status, tag_ids)
            order = "ASC" if (order_by or "Newest").lower() == "oldest" else "DESC"
            ids = [r[0] for r in db.execute(
                f"SELECT i.id FROM images i WHERE {where} ORDER BY i.seq {order} LIMIT ? OFFSET ?",
                args + [take, skip],
            )]
            records = self._image_records(db, ids)
            return [records[i] for i in ids]

    def count_images(self, project_id: str, *, tagging_status: str | None = None,
                     tag_ids: Sequence[str] = ()) -> int:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            where, args = self._image_filter(db, pid, tagging_status, tag_ids)
            return db.execute(f"SELECT COUNT(*) FROM images i WHERE {where}", args).fetchone()[0]

    def get_images_by_ids(self, project_id: str, image_ids: Sequence[str]) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            ids = [_norm_id(i) for i in image_ids]
            records = self._image_records(db, ids)
            return [records[i] for i in ids if i in records and self._owned(db, pid, i)]

    @staticmethod
    def _owned(db, pid: str, image_id: str) -> bool:
        return db.execute("SELECT 1 FROM images WHERE id=? AND project_id=?", (image_id, pid)).fetchone() is not None

    def image_sha(self, project_id: str, image_id: str) -> str:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = db.execute("SELECT sha256 FROM images WHERE id=? AND project_id=?", (_norm_id(image_id), pid)).fetchone()
            if row is None:
                raise not_found("Image", image_id)
            return row[0]

    def delete_images(self, project_id: str, image_ids: Sequence[str] | None, all_images: bool) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            if all_images:
                ids = [r[0] for r in db.execute("SELECT id FROM images WHERE project_id=?", (pid,))]
            else:
                ids = [i for i in (_norm_id(x) for x in image_ids or ()) if self._owned(db, pid, i)]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for table, col in (("image_tags", "image_id"), ("regions", "image_id"), ("images", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", chunk)
            if ids:
                self._bump(db, pid)

    def create_image_tags(self, project_id: str, pairs: Sequence[tuple[str, str]]) -> dict:
        now = utcnow()
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tags = self._known_tags(db, pid)
            created, duplicated, exceeded = [], [], []
            for image_id, tag_id in pairs:
                iid, tid = _norm_id(image_id), _norm_id(tag_id)
                entry = {"imageId": iid, "tagId": tid}
                if not self._owned(db, pid, iid):
                    raise not_found("Image", iid)
                if tid not in tags:
                    raise not_found("Tag", tid)
                if db.execute("SELECT 1 FROM image_tags WHERE image_id=? AND tag_id=?", (iid, tid)).fetchone():
                    duplicated.append(entry)
                    continue
                n = db.execute("SELECT COUNT(*) FROM image_tags WHERE image_id=?", (iid,)).fetchone()[0]
                if n >= MAX_TAGS_PER_IMAGE:
                    exceeded.append(entry)
                    continue
                db.execute("INSERT INTO image_tags VALUES (?,?,?)", (iid, tid, now))
                created.append(entry)
            if created:
                self._bump(db, pid)
            return {"created": created, "duplicated": duplicated, "exceeded": exceeded}

    def delete_image_tags(self, project_id: str, image_ids: Sequence[str], tag_ids: Sequence[str]) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            for iid in (_norm_id(i) for i in image_ids):
                if not self._owned(db, pid, iid):
                    continue
                for tid in (_norm_id(t) for t in tag_ids):
                    db.execute("DELETE FROM image_tags WHERE image_id=? AND tag_id=?", (iid, tid))
            self._bump(db, pid)

    def create_image_regions(self, project_id: str, entries: Sequence[dict]) -> dict:
        now = utcnow()
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tags = self._known_tags(db, pid)
            created, duplicated, exceeded = [], [], []
            for entry in entries:
                iid = _norm_id(entry.get("imageId"))
                region = self._check_region(entry, tags)
                if region is None:
                    raise ApiError(400, "BadRequestImageRegions", "Invalid region or unknown tag")
                if not self._owned(db, pid, iid):
                    raise not_found("Image", iid)
                echo = {"imageId": iid, **region}
                same = db.execute(
                    "SELECT 1 FROM regions WHERE image_id=? AND tag_id=? AND left_=? AND top=? AND width=? AND height=?",
                    (iid, region["tagId"], region["left"], region["top"], region["width"], region["height"]),
                ).fetchone()
                if same:
                    duplicated.append(echo)
                    continue
                n = db.execute("SELECT COUNT(*) FROM regions WHERE image_id=?", (iid,)).fetchone()[0]
                if n >= MAX_REGIONS_PER_IMAGE:
                    exceeded.append(echo)
                    continue
                rid = new_id()
                db.execute("INSERT INTO regions VALUES (?,?,?,?,?,?,?,?)",
                           (rid, iid, region["tagId"], region["left"], region["top"], region["width"],
                            region["height"], now))
                created.append({"imageId": iid, "regionId": rid, "tagName": tags[region["tagId"]]["name"],
                                "created": now, **region})
            if created:
                self._bump(db, pid)
            return {"created": created, "duplicated": duplicated, "exceeded": exceeded}

    def delete_image_regions(self, project_id: str, region_ids: Sequence[str]) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            for rid in (_norm_id(r) for r in region_ids):
                db.execute(
                    "DELETE FROM regions WHERE id=? AND image_id IN (SELECT id FROM images WHERE project_id=?)",
                    (rid, pid),
                )
            self._bump(db, pid)

    def update_metadata(self, project_id: str, image_ids: Sequence[str], metadata: dict) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            out = []
            for iid in (_norm_id(i) for i in image_ids):
                row = db.execute("SELECT metadata FROM images WHERE id=? AND project_id=?", (iid, pid)).fetchone()
                if row is None:
                    out.append({"imageId": iid, "status": "ErrorImageNotFound"})
                    continue
                merged = {**(json.loads(row[0]) if row[0] else {}), **{str(k): str(v) for k, v in metadata.items()}}
                if len(merged) > 50:
                    out.append({"imageId": iid, "status": "ErrorLimitExceed"})
                    continue
                db.execute("UPDATE images SET metadata=? WHERE id=?", (json.dumps(merged), iid))
                out.append({"imageId": iid, "status": "OK", "metadata": merged})
            return out

    # -- iterations ---------------------------------------------------------------------------------
    def _iteration_row(self, db, pid: str, iteration_id: str) -> sqlite3.Row:
        iid = _norm_id(iteration_id)
        row = db.execute("SELECT * FROM iterations WHERE id=? AND project_id=?", (iid, pid)).fetchone()
        if row is None:
            raise not_found("Iteration", iid)
        return row

    @staticmethod
    def _iteration_json(row: sqlite3.Row) -> dict:
        seconds = row["training_seconds"]
        return {
            "id": row["id"], "name": row["name"], "status": row["status"], "created": row["created"],
            "lastModified": row["last_modified"], "trainedAt": row["trained_at"], "projectId": row["project_id"],
            "exportable": False, "exportableTo": [], "domainId": row["domain_id"],
            "classificationType": row["classification_type"], "trainingType": row["training_type"],
            "reservedBudgetInHours": row["budget"],
            "trainingTimeInMinutes": int(seconds // 60) if seconds is not None else 0,
            "publishName": row["publish_name"], "originalPublishResourceId": row["publish_resource_id"],
        }

    def start_training(self, project_id: str, *, training_type: str = "Regular", budget: int = 0,
                       force: bool = False, selected_tags: Sequence[str] | None = None) -> tuple[dict, dict]:
        """Validate the workspace and record a new iteration in status Training.

        Returns the iteration and the job for the trainer: kind, samples (sha256, tag ids, regions).
        """
        with self._tx() as db:
            prow = self._project_row(db, project_id)
            pid = prow["id"]
            kind = prow["classification_type"] or "ObjectDetection"
            if db.execute("SELECT 1 FROM iterations WHERE project_id=? AND status='Training'", (pid,)).fetchone():
                raise ApiError(400, "BadRequestTrainingAlreadyInProgress", "Training is already in progress")
            last = db.execute(
                "SELECT version FROM iterations WHERE project_id=? AND status='Completed' ORDER BY created DESC, rowid DESC",
                (pid,),
            ).fetchone()
            if last is not None and last[0] == prow["version"] and not force:
                raise ApiError(400, "BadRequestTrainingNotNeeded", "Nothing changed since the last training")
            n_iter = db.execute("SELECT COUNT(*) FROM iterations WHERE project_id=?", (pid,)).fetchone()[0]
            limit = self.limits.max_iterations_per_project
            if limit is not None and n_iter >= limit:
                raise ApiError(400, "BadRequestExceedIterationPerProjectLimit",
                               f"Iteration limit of {limit} per project reached")
            tags = self._known_tags(db, pid)
            selected = {_norm_id(t) for t in selected_tags} if selected_tags else set(tags)
            samples = self._samples(db, pid, kind, selected)
            self._validate(kind, samples, tags, selected)
            counts = self._tag_counts(db, pid)
            tag_snapshot = [self._tag_json(tags[t], counts.get(t, 0)) for t in tags if t in selected]
            now = utcnow()
            iid = new_id()
            db.execute(
                "INSERT INTO iterations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (iid, pid, f"Iteration {n_iter + 1}", "Training", now, now, None, prow["domain_id"],
                 prow["classification_type"], training_type, budget, None, None, prow["version"],
                 json.dumps(tag_snapshot), json.dumps(samples), None, None),
            )
            return self._iteration_json(self._iteration_row(db, pid, iid)), {
                "project_id": pid, "iteration_id": iid, "kind": kind, "samples": samples,
            }

    @staticmethod
    def _samples(db, pid: str, kind: str, selected: set[str]) -> list[dict]:
        images: dict[str, dict] = {}
        for r in db.execute("SELECT id, sha256 FROM images WHERE project_id=? ORDER BY seq", (pid,)):
            images[r[0]] = {"sha256": r[1], "tags": [], "regions": []}
        for r in db.execute(
            "SELECT it.image_id, it.tag_id FROM image_tags it JOIN images i ON i.id=it.image_id"
            " WHERE i.project_id=? ORDER BY it.rowid", (pid,)):
            if r[1] in selected:
                images[r[0]]["tags"].append(r[1])
        for r in db.execute(
            "SELECT r.* FROM regions r JOIN images i ON i.id=r.image_id WHERE i.project_id=? ORDER BY r.rowid", (pid,)):
            if r["tag_id"] in selected:
                images[r["image_id"]]["regions"].append(
                    [r["tag_id"], r["left_"], r["top"], r["width"], r["height"]])
                if r["tag_id"] not in images[r["image_id"]]["tags"]:
                    images[r["image_id"]]["tags"].append(r["tag_id"])
        if kind == "ObjectDetection":
            return [s for s in images.values() if s["regions"]]
        return [s for s in images.values() if s["tags"]]

    @staticmethod
    def _validate(kind: str, samples: list[dict], tags: dict, selected: set[str]) -> None:
        per_tag: dict[str, int] = {}
        for s in samples:
            if kind == "ObjectDetection":
                for region in s["regions"]:
                    per_tag[region[0]] = per_tag.get(region[0], 0) + 1
            else:
                for t in s["tags"]:
                    per_tag[t] = per_tag.get(t, 0) + 1
        if kind == "ObjectDetection":
            need, unit, code = 15, "regions", "BadRequestTrainingValidationFailed"
        else:
            need, unit, code = 5, "images", "BadRequestTrainingValidationFailed"
        regular = [t for t in per_tag if tags[t]["type"] != "Negative"]
        if kind == "Multiclass" and len(regular) < 2:
            raise ApiError(400, code, "Training needs at least 2 tags with images for a multiclass project")
        if not regular:
            raise ApiError(400, code, f"Training needs at least one tag with {need} {unit}")
        short = sorted(tags[t]["name"] for t, n in per_tag.items() if n < need)
        if short:
            raise ApiError(400, code, f"Not enough {unit} per tag: each tag needs at least {need} "
                                      f"(too few for: {', '.join(short[:5])})")

    def finish_training(self, iteration_id: str, status: str, performance: dict | None, seconds: float) -> None:
        now = utcnow()
        with self._tx() as db:
            db.execute(
                "UPDATE iterations SET status=?, performance=?, trained_at=?, last_modified=?, training_seconds=?"
                " WHERE id=?",
                (status, json.dumps(performance) if performance is not None else None, now, now, seconds,
                 iteration_id),
            )

    def save_performance(self, iteration_id: str, performance: dict) -> None:
        with self._tx() as db:
            db.execute("UPDATE iterations SET performance=? WHERE id=?", (json.dumps(performance), iteration_id))

    def pending_trainings(self) -> list[dict]:
        """Iterations left in Training by a stop: they are trained again at start-up."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT i.id, i.project_id, i.samples, p.classification_type FROM iterations i"
                " JOIN projects p ON p.id=i.project_id WHERE i.status='Training'"
            ).fetchall()
            return [{"project_id": r[1], "iteration_id": r[0], "kind": r[3] or "ObjectDetection",
                     "samples": json.loads(r[2])} for r in rows]

    def get_iterations(self, project_id: str) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            rows = db.execute("SELECT * FROM iterations WHERE project_id=? ORDER BY created, rowid", (pid,))
            return [self._iteration_json(r) for r in rows]

    def get_iteration(self, project_id: str, iteration_id: str) -> dict:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            return self._iteration_json(self._iteration_row(db, pid, iteration_id))

    def iteration_state(self, project_id: str, iteration_id: str) -> dict:
        """Status, performance and tags of one iteration (for performance and quick tests)."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._iteration_row(db, pid, iteration_id)
            return {
                "id": row["id"], "status": row["status"], "kind": row["classification_type"] or "ObjectDetection",
                "performance": json.loads(row["performance"]) if row["performance"] else None,
                "tags": json.loads(row["tags"]), "samples": json.loads(row["samples"]),
            }

    def latest_completed(self, project_id: str) -> str:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = db.execute(
                "SELECT id FROM iterations WHERE project_id=? AND status='Completed' ORDER BY created DESC, rowid DESC",
                (pid,),
            ).fetchone()
            if row is None:
                raise ApiError(404, "NotFoundProjectDefaultIteration", "The project has no trained iteration")
            return row[0]

    def update_iteration(self, project_id: str, iteration_id: str, body: dict) -> dict:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._iteration_row(db, pid, iteration_id)
            name = body.get("name")
            if not name:
                raise ApiError(400, "BadRequestIterationName", "Iteration name is required")
            if db.execute("SELECT 1 FROM iterations WHERE project_id=? AND name=? AND id<>?",
                          (pid, name, row["id"])).fetchone():
                raise ApiError(400, "BadRequestIterationNameNotUnique", f"Iteration name already exists: {name}")
            db.execute("UPDATE iterations SET name=?, last_modified=? WHERE id=?", (name, utcnow(), row["id"]))
            return self._iteration_json(self._iteration_row(db, pid, row["id"]))

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._iteration_row(db, pid, iteration_id)
            if row["publish_name"]:
                raise ApiError(400, "BadRequestIterationIsPublished", "Unpublish the iteration before deleting it")
            if row["status"] == "Training":
                raise ApiError(400, "BadRequestTrainingAlreadyInProgress", "The iteration is still training")
            db.execute("DELETE FROM iterations WHERE id=?", (row["id"],))

    def publish(self, project_id: str, iteration_id: str, name: str, resource_id: str, overwrite: bool) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._iteration_row(db, pid, iteration_id)
            if row["status"] != "Completed":
                raise ApiError(400, "BadRequestIterationIsNotTrained", "The iteration is not trained")
            if not name or len(name) > 256:
                raise ApiError(400, "BadRequestInvalidPublishName", "Invalid publish name")
            other = db.execute("SELECT id FROM iterations WHERE project_id=? AND publish_name=? AND id<>?",
                               (pid, name, row["id"])).fetchone()
            if other is not None:
                if not overwrite:
                    raise ApiError(400, "BadRequestInvalidPublishName", f"Publish name already in use: {name}")
                db.execute("UPDATE iterations SET publish_name=NULL, publish_resource_id=NULL WHERE id=?", (other[0],))
            db.execute("UPDATE iterations SET publish_name=?, publish_resource_id=?, last_modified=? WHERE id=?",
                       (name, resource_id, utcnow(), row["id"]))

    def unpublish(self, project_id: str, iteration_id: str) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._iteration_row(db, pid, iteration_id)
            if not row["publish_name"]:
                raise ApiError(400, "BadRequestIterationNotPublished", "The iteration is not published")
            db.execute("UPDATE iterations SET publish_name=NULL, publish_resource_id=NULL WHERE id=?", (row["id"],))

    def published(self, project_id: str, publish_name: str) -> dict:
        """The iteration published under a name (prediction API), or 404."""
        with self._tx() as db:
            pid = _norm_id(project_id)
            if db.execute("SELECT 1 FROM projects WHERE id=?", (pid,)).fetchone() is None:
                raise not_found("Project", pid)
            row = db.execute("SELECT * FROM iterations WHERE project_id=? AND publish_name=?",
                             (pid, publish_name)).fetchone()
            if row is None:
                raise ApiError(404, "NotFoundIteration", f"No iteration published as {publish_name!r}")
            return {"id": row["id"], "kind": row["classification_type"] or "ObjectDetection",
                    "tags": json.loads(row["tags"])}

    # -- export / import ---------------------------------------------------------------------------------
    def export_snapshot(self, project_id: str) -> dict:
        with self._tx() as db:
            prow = self._project_row(db, project_id)
            pid = prow["id"]
            images = [dict(r) for r in db.execute(
                "SELECT id, sha256, width, height, format, size, metadata FROM images WHERE project_id=? ORDER BY seq",
                (pid,))]
            return {
                "project": {"name": prow["name"], "description": prow["description"], "domainId": prow["domain_id"],
                            "classificationType": prow["classification_type"],
                            "exportPlatforms": json.loads(prow["export_platforms"])},
                "tags": [dict(r) for r in db.execute("SELECT id, name, description, type FROM tags WHERE project_id=?", (pid,))],
                "images": images,
                "imageTags": [list(r) for r in db.execute(
                    "SELECT it.image_id, it.tag_id FROM image_tags it JOIN images i ON i.id=it.image_id WHERE i.project_id=?",
                    (pid,))],
                "regions": [list(r) for r in db.execute(
                    "SELECT r.image_id, r.tag_id, r.left_, r.top, r.width, r.height FROM regions r"
                    " JOIN images i ON i.id=r.image_id WHERE i.project_id=?", (pid,))],
                "iterationCount": db.execute("SELECT COUNT(*) FROM iterations WHERE project_id=?", (pid,)).fetchone()[0],
            }

    def import_snapshot(self, snap: dict, name: str | None) -> dict:
        p = snap["project"]
        project = self.create_project(name or p["name"], p["description"], p["domainId"],
                                      p["classificationType"], p["exportPlatforms"])
        pid = project["id"]
        now = utcnow()
        with self._tx() as db:
            tag_map = {}
            for t in snap["tags"]:
                tag_map[t["id"]] = new_id()
                db.execute("INSERT INTO tags VALUES (?,?,?,?,?,?)",
                           (tag_map[t["id"]], pid, t["name"], t["description"], t["type"], now))
            image_map = {}
            for im in snap["images"]:
                image_map[im["id"]] = new_id()
                db.execute(
                    "INSERT INTO images (id, project_id, sha256, width, height, format, size, created, metadata)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (image_map[im["id"]], pid, im["sha256"], im["width"], im["height"], im["format"], im["size"],
                     now, im["metadata"]),
                )
            db.executemany("INSERT INTO image_tags VALUES (?,?,?)",
                           [(image_map[i], tag_map[t], now) for i, t in snap["imageTags"]])
            db.executemany("INSERT INTO regions VALUES (?,?,?,?,?,?,?,?)",
                           [(new_id(), image_map[i], tag_map[t], l, tp, w, h, now)
                            for i, t, l, tp, w, h in snap["regions"]])
            self._bump(db, pid)
            return self._project_json(self._project_row(db, pid))
