"""The emulator's records: SQLite (WAL) behind one lock; image bytes live in the ``BlobStore``.

``Store`` joins the parts, one module each: projects and tags, images, iterations and predictions,
and here export / import of a whole project.
"""

from __future__ import annotations

import json

from ._db import new_id, utcnow
from ._store_images import ImageStore, NewImage
from ._store_iterations import IterationStore
from ._store_ops import OpsStore
from ._store_projects import ProjectStore

__all__ = ["Store", "NewImage", "utcnow", "new_id"]


class Store(ProjectStore, ImageStore, IterationStore, OpsStore):
    # -- export / import ---------------------------------------------------------------------------------
    def export_snapshot(self, project_id: str) -> dict:
        with self._tx() as db:
            prow = self._project_row(db, project_id)
            pid = prow["id"]
            images = [dict(r) for r in db.execute(
                "SELECT id, sha256, width, height, format, size, metadata FROM images WHERE project_id=? ORDER BY seq",
                (pid,))]
            iterations = [dict(r) for r in db.execute(
                "SELECT name, training_type, budget, tags, samples, custom_base FROM iterations"
                " WHERE project_id=? AND status='Completed' ORDER BY created, rowid", (pid,))]
            return {
                "projectId": pid,
                "iterations": iterations,
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

    def import_snapshot(self, snap: dict, name: str | None) -> tuple[dict, list[dict]]:
        """A new project (status ``Importing``) with the snapshot's tags, images, regions and
        trained iterations; the iterations come back in ``Training`` with the jobs that retrain
        them (the trainer is deterministic: the same model as the exported one)."""
        p = snap["project"]
        project = self.create_project(name or p["name"], p["description"], p["domainId"],
                                      p["classificationType"], p["exportPlatforms"], status="Importing",
                                      rename=True)
        pid = project["id"]
        now = utcnow()
        jobs = []
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
                           [(new_id(), image_map[i], tag_map[t], left, tp, w, h, now)
                            for i, t, left, tp, w, h in snap["regions"]])
            self._bump(db, pid)
            version = self._project_row(db, pid)["version"]
            for it in snap.get("iterations") or []:
                tags = [{**t, "id": tag_map.get(t["id"], t["id"])} for t in json.loads(it["tags"])]
                samples = [{**s, "tags": [tag_map.get(x, x) for x in s["tags"]],
                            "regions": [[tag_map.get(r[0], r[0]), *r[1:]] for r in s["regions"]]}
                           for s in json.loads(it["samples"])]
                iid = new_id()
                self._insert_training(db, iid, pid, it["name"], now, p["domainId"], p["classificationType"],
                                      it["training_type"], it["budget"], version, tags, samples,
                                      it["custom_base"])
                jobs.append({"project_id": pid, "iteration_id": iid,
                             "kind": p["classificationType"] or "ObjectDetection", "samples": samples})
            return self._project_json(self._project_row(db, pid)), jobs

    def iterations_training(self, project_id: str) -> int:
        with self._tx() as db:
            return db.execute("SELECT COUNT(*) FROM iterations WHERE project_id=? AND status='Training'",
                              (project_id,)).fetchone()[0]
