"""Iterations (training, publishing) and stored predictions in the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ._db import StoreBase, new_id, norm_id, utcnow
from ._domains import domain_by_id
from ._errors import ApiError, not_found

__all__ = ["IterationStore"]


class IterationStore(StoreBase):
    # -- iterations ---------------------------------------------------------------------------------

    @staticmethod
    def _insert_training(db: sqlite3.Connection, iid: str, pid: str, name: str, now: str, domain_id: str | None,
                         kind: str | None, training_type: str | None, budget: int | None, version: int,
                         tags: list[dict], samples: list[dict], custom_base: str | None) -> None:
        """A new iteration row in status Training (train and project import both start one)."""
        db.execute(
            "INSERT INTO iterations (id, project_id, name, status, created, last_modified, trained_at,"
            " domain_id, classification_type, training_type, budget, publish_name, publish_resource_id,"
            " version, tags, samples, performance, training_seconds, custom_base)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (iid, pid, name, "Training", now, now, None, domain_id, kind, training_type, budget, None, None,
             version, json.dumps(tags), json.dumps(samples), None, None, custom_base),
        )

    def _iteration_row(self, db, pid: str, iteration_id: str) -> sqlite3.Row:
        iid = norm_id(iteration_id)
        row = db.execute("SELECT * FROM iterations WHERE id=? AND project_id=?", (iid, pid)).fetchone()
        if row is None:
            raise not_found("Iteration", iid)
        return row

    @staticmethod
    def _iteration_json(row: sqlite3.Row) -> dict:
        """An Iteration as v3.4-preview writes it (``iteration_view`` trims it for older versions):
        while training, no ``trainedAt`` and ``domainId`` / ``classificationType`` still null. A
        trained iteration of a compact domain is ``exportable`` (recorded, ExportTests), and
        v3.4-preview writes ``exportableTo: null`` even then (``iteration_view`` lists the
        platforms for the older versions)."""
        seconds = row["training_seconds"]
        queued = row["status"] == "Training" and row["training_seconds"] is None
        domain = domain_by_id(row["domain_id"] or "")
        exportable = row["status"] == "Completed" and bool(domain and domain["exportable"])
        out = {
            "id": row["id"], "name": row["name"], "status": row["status"], "created": row["created"],
            "lastModified": row["last_modified"], "trainedAt": row["trained_at"], "projectId": row["project_id"],
            "exportable": exportable, "exportableTo": None,
            "domainId": None if queued else row["domain_id"],
            "classificationType": None if queued else row["classification_type"],
            "trainingType": row["training_type"], "reservedBudgetInHours": row["budget"],
            "trainingTimeInMinutes": int(seconds // 60) if seconds is not None else 0,
            "publishName": row["publish_name"], "originalPublishResourceId": row["publish_resource_id"],
            "customBaseModelInfo": json.loads(row["custom_base"]) if row["custom_base"] else None,
            "trainingErrorDetails": None,
        }
        if row["trained_at"] is None:
            del out["trainedAt"]
        return out

    def start_training(self, project_id: str, *, training_type: str = "Regular", budget: int = 0,
                       force: bool = False, selected_tags: Sequence[str] | None = None,
                       custom_base: dict | None = None) -> tuple[dict, dict]:
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
            selected = {norm_id(t) for t in selected_tags} if selected_tags else set(tags)
            samples = self._samples(db, pid, kind, selected)
            self._validate(kind, samples, tags, selected)
            counts = self._tag_counts(db, pid)
            tag_snapshot = [self._tag_json(tags[t], counts.get(t, 0)) for t in tags if t in selected]
            now = utcnow()
            iid = new_id()
            self._insert_training(db, iid, pid, f"Iteration {n_iter + 1}", now, prow["domain_id"],
                                  prow["classification_type"], training_type, budget, prow["version"],
                                  tag_snapshot, samples, json.dumps(custom_base) if custom_base else None)
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

    def finish_training(self, iteration_id: str, status: str, seconds: float) -> None:
        """The end of a training; its performance is computed on the first request (``_evaluation``)."""
        now = utcnow()
        with self._tx() as db:
            db.execute(
                "UPDATE iterations SET status=?, performance=NULL, trained_at=?, last_modified=?, training_seconds=?"
                " WHERE id=?",
                (status, now, now, seconds, iteration_id),
            )

    def mark_training_started(self, iteration_id: str) -> None:
        """Out of the queue: the iteration shows its domain and classification type from now."""
        with self._tx() as db:
            db.execute("UPDATE iterations SET training_seconds=0 WHERE id=? AND training_seconds IS NULL",
                       (iteration_id,))

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

    def iteration_state(self, project_id: str, iteration_id: str, *, samples: bool = False) -> dict:
        """Status, performance and tags of one iteration (for performance and quick tests); its
        training samples only when asked, as they can be long."""
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = self._iteration_row(db, pid, iteration_id)
            return {
                "id": row["id"], "status": row["status"], "kind": row["classification_type"] or "ObjectDetection",
                "performance": json.loads(row["performance"]) if row["performance"] else None,
                "tags": json.loads(row["tags"]), "samples": json.loads(row["samples"]) if samples else None,
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
            pid = norm_id(project_id)
            if db.execute("SELECT 1 FROM projects WHERE id=?", (pid,)).fetchone() is None:
                raise not_found("Project", pid)
            row = db.execute("SELECT * FROM iterations WHERE project_id=? AND publish_name=?",
                             (pid, publish_name)).fetchone()
            if row is None:
                raise ApiError(404, "NotFoundIteration", f"No iteration published as {publish_name!r}")
            return {"id": row["id"], "kind": row["classification_type"] or "ObjectDetection",
                    "tags": json.loads(row["tags"])}

    # -- stored predictions (the store variants of prediction, quick tests) --------------------------
    def save_prediction(self, result: dict, sha256: str, application: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO predictions (id, project_id, iteration_id, sha256, created, application, result)"
                " VALUES (?,?,?,?,?,?,?)",
                (result["id"], result["project"], result["iteration"], sha256, result["created"], application,
                 json.dumps(result["predictions"])),
            )

    def query_predictions(self, project_id: str, query: dict) -> tuple[list[dict], int | None]:
        """Stored predictions matching a PredictionQueryToken; the offset of the next page or None."""
        with self._tx() as db:
            prow = self._project_row(db, project_id)
            where, args = ["project_id=?"], [prow["id"]]
            if query.get("iterationId"):
                where.append("iteration_id=?")
                args.append(norm_id(query["iterationId"]))
            if query.get("application"):
                where.append("application=?")
                args.append(query["application"])
            for key, op in (("startTime", ">="), ("endTime", "<=")):
                if query.get(key):
                    where.append(f"created {op} ?")
                    args.append(str(query[key]))
            order = "ASC" if str(query.get("orderBy") or "Newest").lower() == "oldest" else "DESC"
            rows = db.execute(
                f"SELECT * FROM predictions WHERE {' AND '.join(where)} ORDER BY seq {order}", args
            ).fetchall()
        wanted = query.get("tags") or []
        out = []
        for r in rows:
            predictions = json.loads(r["result"])
            if wanted and not all(
                any(p["tagId"] == t.get("id") and float(t.get("minThreshold") or 0.0) <= p["probability"]
                    <= float(t.get("maxThreshold") if t.get("maxThreshold") is not None else 1.0)
                    for p in predictions)
                for t in wanted
            ):
                continue
            out.append({"id": r["id"], "project": r["project_id"], "iteration": r["iteration_id"],
                        "created": r["created"], "domain": prow["domain_id"], "_sha": r["sha256"],
                        "predictions": predictions})
        try:
            start = int(query.get("continuation") or 0)
        except ValueError:
            raise ApiError(400, "BadRequestPredictionInvalidQueryParameters", "Invalid continuation") from None
        count = int(query.get("maxCount") or 50)
        if not 1 <= count <= 256:
            raise ApiError(400, "BadRequestPredictionInvalidQueryParameters", "maxCount must be 1..256")
        page = out[start:start + count]
        return page, (start + count if start + count < len(out) else None)

    def delete_predictions(self, project_id: str, ids: Sequence[str]) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            for chunk_start in range(0, len(ids), 500):
                chunk = [norm_id(i) for i in ids[chunk_start:chunk_start + 500]]
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM predictions WHERE project_id=? AND id IN ({marks})", [pid, *chunk])

