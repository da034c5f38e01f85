"""The store's part for the labelling and delivery operations: model exports, suggested tags of
untagged images, per-image performance of an iteration, and the lookups those operations need.

Its tables live beside the others in the same SQLite file (created here, so the base schema stays
as it is); rows are keyed by iteration, which every query checks first, so rows of a deleted
iteration or project are never served.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ._config import TierLimits
from ._db import StoreBase, norm_id, utcnow
from ._domains import domain_by_id
from ._errors import ApiError, not_found

__all__ = ["OpsStore", "EXPORT_PLATFORMS", "EXPORT_FLAVORS"]

_OPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_exports (
  iteration_id TEXT NOT NULL, project_id TEXT NOT NULL, platform TEXT NOT NULL, flavor TEXT NOT NULL,
  status TEXT NOT NULL, file TEXT, created TEXT NOT NULL, PRIMARY KEY (iteration_id, platform, flavor));
CREATE TABLE IF NOT EXISTS suggestions (
  iteration_id TEXT NOT NULL, image_id TEXT NOT NULL, project_id TEXT NOT NULL, created TEXT NOT NULL,
  uncertainty REAL NOT NULL, predictions TEXT NOT NULL, PRIMARY KEY (iteration_id, image_id));
CREATE TABLE IF NOT EXISTS image_performances (iteration_id TEXT PRIMARY KEY, results TEXT NOT NULL);
"""

# ExportIteration's platform and, per platform, the flavors the spec allows ('' = none given).
EXPORT_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK")
EXPORT_FLAVORS = {
    "CoreML": ("",),
    "TensorFlow": ("", "TensorFlowNormal", "TensorFlowLite"),
    "DockerFile": ("", "Linux", "Windows", "ARM"),
    "ONNX": ("", "ONNX10", "ONNX12"),
    "VAIDK": ("",),
}
# A finished export whose iteration still exists (a deleted iteration takes its downloads with it).
_LIVE_EXPORT = ("SELECT 1 FROM model_exports e JOIN iterations i ON i.id=e.iteration_id"
                " WHERE e.file=? AND e.status='Done'")
_UNTAGGED = ("NOT EXISTS (SELECT 1 FROM image_tags it WHERE it.image_id=i.id) AND "
             "NOT EXISTS (SELECT 1 FROM regions r WHERE r.image_id=i.id)")


class OpsStore(StoreBase):
    def __init__(self, path: Path, limits: TierLimits) -> None:
        super().__init__(path, limits)
        self._db.executescript(_OPS_SCHEMA)

    def _ops_iteration(self, db: sqlite3.Connection, project_id: str, iteration_id: str) -> sqlite3.Row:
        pid = self._project_row(db, project_id)["id"]
        iid = norm_id(iteration_id)
        row = db.execute("SELECT * FROM iterations WHERE id=? AND project_id=?", (iid, pid)).fetchone()
        if row is None:
            raise not_found("Iteration", iid)
        return row

    def trained_iteration(self, project_id: str, iteration_id: str) -> dict:
        """id, kind, tags (snapshot), name of a Completed iteration; 400 if it is not trained."""
        with self._tx() as db:
            row = self._ops_iteration(db, project_id, iteration_id)
            if row["status"] != "Completed":
                raise ApiError(400, "BadRequestIterationIsNotTrained", "The iteration is not trained")
            return {"id": row["id"], "project_id": row["project_id"], "name": row["name"],
                    "kind": row["classification_type"] or "ObjectDetection", "domain_id": row["domain_id"],
                    "tags": json.loads(row["tags"])}

    # -- model exports ------------------------------------------------------------------------------
    @staticmethod
    def _export_json(row: sqlite3.Row) -> dict:
        return {"platform": row["platform"], "status": row["status"], "downloadUri": row["file"],
                "flavor": row["flavor"] or None, "newerVersionAvailable": False}

    def begin_export(self, project_id: str, iteration_id: str, platform: str, flavor: str) -> dict:
        """Record an export in status Exporting (``downloadUri`` holds the file name once Done)."""
        if platform not in EXPORT_PLATFORMS:
            raise ApiError(400, "BadRequestExportValidationFailed", f"Unknown export platform: {platform}")
        if flavor not in EXPORT_FLAVORS[platform]:
            raise ApiError(400, "BadRequestExportValidationFailed",
                           f"The flavor {flavor} is not one of platform {platform}")
        with self._tx() as db:
            row = self._ops_iteration(db, project_id, iteration_id)
            if row["status"] == "Training":
                raise ApiError(400, "BadRequestExportWhileTraining", "The iteration is still training")
            if row["status"] != "Completed":
                raise ApiError(400, "BadRequestIterationIsNotTrained", "The iteration is not trained")
            domain = domain_by_id(row["domain_id"]) or {}
            if not domain.get("exportable"):
                raise ApiError(400, "BadRequestExportValidationFailed",
                               "The iteration's domain cannot be exported: train it with a compact domain")
            key = (row["id"], platform, flavor)
            old = db.execute("SELECT status FROM model_exports WHERE iteration_id=? AND platform=? AND flavor=?",
                             key).fetchone()
            if old is not None and old[0] == "Exporting":
                raise ApiError(400, "BadRequestExportAlreadyInProgress", "This export is already in progress")
            db.execute("INSERT OR REPLACE INTO model_exports VALUES (?,?,?,?,?,?,?)",
                       (row["id"], row["project_id"], platform, flavor, "Exporting", None, utcnow()))
            return self._export_json(db.execute(
                "SELECT * FROM model_exports WHERE iteration_id=? AND platform=? AND flavor=?", key).fetchone())

    def finish_export(self, iteration_id: str, platform: str, flavor: str, status: str, file: str | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE model_exports SET status=?, file=? WHERE iteration_id=? AND platform=? AND flavor=?",
                       (status, file, iteration_id, platform, flavor))

    def list_exports(self, project_id: str, iteration_id: str) -> list[dict]:
        """The iteration's exports, oldest first (``downloadUri`` is the file name or None)."""
        with self._tx() as db:
            row = self._ops_iteration(db, project_id, iteration_id)
            rows = db.execute("SELECT * FROM model_exports WHERE iteration_id=? ORDER BY created, rowid", (row["id"],))
            return [self._export_json(r) for r in rows]

    def owns_export(self, project_id: str, file: str) -> bool:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            return db.execute(_LIVE_EXPORT + " AND e.project_id=?", (file, pid)).fetchone() is not None

    def export_done(self, file: str) -> bool:
        with self._tx() as db:
            return db.execute(_LIVE_EXPORT, (file,)).fetchone() is not None

    # -- files of a project ---------------------------------------------------------------------------
    def owns_blob(self, project_id: str, sha256: str) -> bool:
        """Whether an image or a stored prediction of the project has this content."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            for table in ("images", "predictions"):
                if db.execute(f"SELECT 1 FROM {table} WHERE project_id=? AND sha256=?", (pid, sha256)).fetchone():
                    return True
            return False

    def image_blobs(self, project_id: str, image_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(image id, sha256) for each id, in order; 404 NotFoundImage for an image not in the project."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            out = []
            for iid in (norm_id(i) for i in image_ids):
                row = db.execute("SELECT sha256 FROM images WHERE id=? AND project_id=?", (iid, pid)).fetchone()
                if row is None:
                    raise not_found("Image", iid)
                out.append((iid, row[0]))
            return out

    def image_ids_by_sha(self, project_id: str, shas: Sequence[str]) -> dict[str, str]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            out: dict[str, str] = {}
            for start in range(0, len(shas), 500):
                chunk = list(shas[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for r in db.execute(f"SELECT sha256, id FROM images WHERE project_id=? AND sha256 IN ({marks})",
                                    [pid, *chunk]):
                    out[r[0]] = r[1]
            return out

    def prediction_blobs(self, project_id: str, prediction_ids: Sequence[str]) -> dict[str, str]:
        """Stored predictions of the project by id -> sha256 of their image (unknown ids left out)."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            out: dict[str, str] = {}
            for raw in prediction_ids:
                row = db.execute("SELECT sha256 FROM predictions WHERE project_id=? AND id=?",
                                 (pid, norm_id(raw))).fetchone()
                if row is not None:
                    out[norm_id(raw)] = row[0]
            return out

    # -- suggested tags -----------------------------------------------------------------------------
    def save_suggestions(self, project_id: str, iteration_id: str, rows: Sequence[dict]) -> None:
        """Store suggestions: each row has imageId, created, predictions, predictionUncertainty."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO suggestions VALUES (?,?,?,?,?,?)",
                [(iteration_id, r["imageId"], project_id, r["created"], r["predictionUncertainty"],
                  json.dumps(r["predictions"])) for r in rows],
            )

    def untagged_without_suggestion(self, project_id: str, iteration_id: str) -> list[tuple[str, str]]:
        """(image id, sha256) of the untagged images the iteration has not suggested tags for yet."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            return [(r[0], r[1]) for r in db.execute(
                f"SELECT i.id, i.sha256 FROM images i WHERE i.project_id=? AND {_UNTAGGED} AND NOT EXISTS"
                " (SELECT 1 FROM suggestions s WHERE s.iteration_id=? AND s.image_id=i.id) ORDER BY i.seq",
                (pid, iteration_id))]

    def untagged_suggestions(self, project_id: str, iteration_id: str) -> list[dict]:
        """The stored suggestions of the images that are still untagged, in upload order."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            rows = db.execute(
                f"SELECT s.* FROM suggestions s JOIN images i ON i.id=s.image_id WHERE i.project_id=? AND"
                f" s.iteration_id=? AND {_UNTAGGED} ORDER BY i.seq", (pid, iteration_id))
            return [{"imageId": r["image_id"], "created": r["created"], "predictionUncertainty": r["uncertainty"],
                     "predictions": json.loads(r["predictions"])} for r in rows]

    # -- image performances -------------------------------------------------------------------------
    def image_performances(self, iteration_id: str) -> list[dict] | None:
        with self._tx() as db:
            row = db.execute("SELECT results FROM image_performances WHERE iteration_id=?", (iteration_id,)).fetchone()
            return json.loads(row[0]) if row else None

    def save_image_performances(self, iteration_id: str, results: list[dict]) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO image_performances VALUES (?,?)", (iteration_id, json.dumps(results)))
