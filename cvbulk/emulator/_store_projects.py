"""Projects and tags in the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import ClassVar

from ._db import StoreBase, new_id, norm_id, utcnow
from ._domains import DEFAULT_DOMAIN_ID, domain_by_id
from ._errors import ApiError, not_found

__all__ = ["ProjectStore"]


class ProjectStore(StoreBase):
    # -- projects ---------------------------------------------------------------------------------
    # The service's project settings: augmentation on, no detection parameters unless set.
    _AUGMENTATION: ClassVar[dict[str, bool]] = {
        "rotation": True, "scaling": True, "translation": True, "horizontal flip": True,
        "equalize": True, "solarize": True, "padtosquare": True,
    }

    @classmethod
    def _project_json(cls, row: sqlite3.Row) -> dict:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "settings": {
                "domainId": row["domain_id"],
                "classificationType": row["classification_type"],
                "targetExportPlatforms": json.loads(row["export_platforms"]),
                "useNegativeSet": True,
                "detectionParameters": None,
                "imageProcessingSettings": {"augmentationMethods": dict(cls._AUGMENTATION)},
            },
            "created": row["created"],
            "lastModified": row["last_modified"],
            "thumbnailUri": None,
            "drModeEnabled": False,
            "status": row["status"],
        }

    @staticmethod
    def _free_name(db: sqlite3.Connection, name: str) -> str:
        """An imported copy of a taken name gets the first free `` (n)`` suffix (recorded: ImportProject)."""
        taken = {r[0] for r in db.execute("SELECT name FROM projects WHERE name=? OR name LIKE ?",
                                          (name, name.replace("%", "_") + " (%)"))}
        if name not in taken:
            return name
        n = 1
        while f"{name} ({n})" in taken:
            n += 1
        return f"{name} ({n})"

    def create_project(
        self,
        name: str,
        description: str = "",
        domain_id: str | None = None,
        classification_type: str | None = None,
        export_platforms: Sequence[str] = (),
        project_id: str | None = None,
        status: str = "Succeeded",
        rename: bool = False,
    ) -> dict:
        if not name or len(name) > 1024:
            raise ApiError(400, "BadRequestProjectName", "Project name is empty or too long")
        domain = domain_by_id(norm_id(domain_id or DEFAULT_DOMAIN_ID))
        if domain is None:
            raise ApiError(400, "BadRequestProjectUnknownDomain", f"Unknown domain: {domain_id}")
        if domain["type"] == "ObjectDetection":
            classification_type = None
        else:
            classification_type = classification_type or "Multilabel"  # the service's default
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
                "INSERT INTO projects (id, name, description, domain_id, classification_type, export_platforms,"
                " created, last_modified, version, status) VALUES (?,?,?,?,?,?,?,?,0,?)",
                # Duplicate names are accepted (cvbulk's name lookups expect them; the recordings never
                # create one); an imported copy gets a free `` (n)`` suffix, as recorded.
                (pid, self._free_name(db, name) if rename else name, description or "", domain["id"], classification_type,
                 json.dumps(list(export_platforms)), now, now, status),
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
                domain = domain_by_id(norm_id(settings["domainId"]))
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

    def project_thumbnails(self) -> dict[str, str]:
        """The newest image (sha256) of every project that has one: its ``thumbnailUri``."""
        with self._tx() as db:
            return {r[0]: r[1] for r in db.execute(
                "SELECT project_id, sha256 FROM images WHERE seq IN (SELECT MAX(seq) FROM images GROUP BY project_id)")}

    def set_project_status(self, project_id: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE projects SET status=?, last_modified=? WHERE id=?", (status, utcnow(), project_id))

    def delete_project(self, project_id: str) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            if db.execute("SELECT 1 FROM iterations WHERE project_id=? AND publish_name IS NOT NULL",
                          (pid,)).fetchone():
                # The service refuses while an iteration is published (unpublish it first).
                raise ApiError(400, "BadRequestWorkspaceNotDeletable",
                               "The project has a published iteration: unpublish it before deleting the project")
            image_ids = "SELECT id FROM images WHERE project_id=?"
            db.execute(f"DELETE FROM image_tags WHERE image_id IN ({image_ids})", (pid,))
            db.execute(f"DELETE FROM regions WHERE image_id IN ({image_ids})", (pid,))
            for table in ("images", "tags", "iterations", "predictions"):
                db.execute(f"DELETE FROM {table} WHERE project_id=?", (pid,))
            db.execute("DELETE FROM projects WHERE id=?", (pid,))

    # -- tags -----------------------------------------------------------------------------------
    @staticmethod
    def _tag_json(row: sqlite3.Row, image_count: int) -> dict:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"] or None,  # the service: null when none was given
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
        tid = norm_id(tag_id)
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

