"""Images, their tags, regions and metadata in the store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from . import _db
from ._db import StoreBase, new_id, norm_id, utcnow
from ._errors import ApiError, not_found

__all__ = ["ImageStore", "NewImage"]


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



class ImageStore(StoreBase):
    # -- images -----------------------------------------------------------------------------------
    def add_images(self, project_id: str, items: Sequence[NewImage], tag_ids: Sequence[str] = (),
                   metadata: dict | None = None) -> list[tuple[str, str, dict | None]]:
        """Create images; one (sourceUrl, status, image record or None) per item, in order."""
        now = utcnow()
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tags = self._known_tags(db, pid)
            batch_tags = [norm_id(t) for t in tag_ids]
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
                image_tags = list(dict.fromkeys(batch_tags + [norm_id(t) for t in item.tag_ids]))
                checked = [self._check_region(r, tags) for r in item.regions]
                regions = [r for r in checked if r is not None]
                if any(t not in tags for t in image_tags) or len(regions) != len(checked):
                    results.append((item.source_url, "ErrorUnknown", None))
                    continue
                region_tags = {r["tagId"] for r in regions}
                all_tags = set(image_tags) | region_tags
                if len(all_tags) > _db.MAX_TAGS_PER_IMAGE:
                    results.append((item.source_url, "ErrorTagLimitExceed", None))
                    continue
                if len(regions) > _db.MAX_REGIONS_PER_IMAGE:
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
                "tagId": norm_id(region.get("tagId")),
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
                rec = out[r["image_id"]]
                rec["regions"].append({
                    "regionId": r["id"], "tagName": r["name"], "created": r["created"], "tagId": r["tag_id"],
                    "left": r["left_"], "top": r["top"], "width": r["width"], "height": r["height"],
                })
                if all(t["tagId"] != r["tag_id"] for t in rec["tags"]):  # the service lists region tags too
                    rec["tags"].append({"tagId": r["tag_id"], "tagName": r["name"], "created": r["created"]})
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
            ids = [norm_id(t) for t in tag_ids]
            marks = ",".join("?" * len(ids))
            where.append(
                f"(EXISTS (SELECT 1 FROM image_tags it WHERE it.image_id=i.id AND it.tag_id IN ({marks})) OR "
                f"EXISTS (SELECT 1 FROM regions r WHERE r.image_id=i.id AND r.tag_id IN ({marks})))"
            )
            args += ids + ids
        return " AND ".join(where), args

    def get_images(self, project_id: str, *, tagging_status: str | None = None, tag_ids: Sequence[str] = (),
                   order_by: str | None = None, take: int = 50, skip: int = 0,
                   metadata_filter: Callable[[dict], bool] | None = None) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            where, args = self._image_filter(db, pid, tagging_status, tag_ids)
            order = "ASC" if (order_by or "Newest").lower() == "oldest" else "DESC"
            if metadata_filter is None:
                ids = [r[0] for r in db.execute(
                    f"SELECT i.id FROM images i WHERE {where} ORDER BY i.seq {order} LIMIT ? OFFSET ?",
                    args + [take, skip],
                )]
            else:  # $filter: over the metadata of every candidate, then the page
                rows = db.execute(f"SELECT i.id, i.metadata FROM images i WHERE {where} ORDER BY i.seq {order}", args)
                ids = [r[0] for r in rows if metadata_filter(json.loads(r[1]) if r[1] else {})][skip:skip + take]
            records = self._image_records(db, ids)
            return [records[i] for i in ids]

    def count_images(self, project_id: str, *, tagging_status: str | None = None,
                     tag_ids: Sequence[str] = (), metadata_filter: Callable[[dict], bool] | None = None) -> int:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            where, args = self._image_filter(db, pid, tagging_status, tag_ids)
            if metadata_filter is None:
                return db.execute(f"SELECT COUNT(*) FROM images i WHERE {where}", args).fetchone()[0]
            rows = db.execute(f"SELECT i.metadata FROM images i WHERE {where}", args)
            return sum(1 for r in rows if metadata_filter(json.loads(r[0]) if r[0] else {}))

    def get_images_by_ids(self, project_id: str, image_ids: Sequence[str]) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            ids = [norm_id(i) for i in image_ids]
            records = self._image_records(db, ids)
            return [records[i] for i in ids if i in records and self._owned(db, pid, i)]

    @staticmethod
    def _owned(db, pid: str, image_id: str) -> bool:
        return db.execute("SELECT 1 FROM images WHERE id=? AND project_id=?", (image_id, pid)).fetchone() is not None

    def image_sha(self, project_id: str, image_id: str) -> str:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            row = db.execute("SELECT sha256 FROM images WHERE id=? AND project_id=?", (norm_id(image_id), pid)).fetchone()
            if row is None:
                raise not_found("Image", image_id)
            return row[0]

    def delete_images(self, project_id: str, image_ids: Sequence[str] | None, all_images: bool) -> None:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            if all_images:
                ids = [r[0] for r in db.execute("SELECT id FROM images WHERE project_id=?", (pid,))]
            else:
                ids = [i for i in (norm_id(x) for x in image_ids or ()) if self._owned(db, pid, i)]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for table, col in (("image_tags", "image_id"), ("regions", "image_id"), ("images", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", chunk)
            if ids:
                self._bump(db, pid)

    def create_image_tags(self, project_id: str, pairs: Sequence[tuple[object, object]]) -> dict:
        now = utcnow()
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tags = self._known_tags(db, pid)
            created, duplicated, exceeded = [], [], []
            for image_id, tag_id in pairs:
                iid, tid = norm_id(image_id), norm_id(tag_id)
                entry = {"imageId": iid, "tagId": tid}
                if not self._owned(db, pid, iid):
                    raise not_found("Image", iid)
                if tid not in tags:
                    raise not_found("Tag", tid)
                if db.execute("SELECT 1 FROM image_tags WHERE image_id=? AND tag_id=?", (iid, tid)).fetchone():
                    duplicated.append(entry)
                    continue
                n = db.execute("SELECT COUNT(*) FROM image_tags WHERE image_id=?", (iid,)).fetchone()[0]
                if n >= _db.MAX_TAGS_PER_IMAGE:
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
            for iid in (norm_id(i) for i in image_ids):
                if not self._owned(db, pid, iid):
                    continue
                for tid in (norm_id(t) for t in tag_ids):
                    db.execute("DELETE FROM image_tags WHERE image_id=? AND tag_id=?", (iid, tid))
            self._bump(db, pid)

    def create_image_regions(self, project_id: str, entries: Sequence[dict]) -> dict:
        now = utcnow()
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            tags = self._known_tags(db, pid)
            created, duplicated, exceeded = [], [], []
            for entry in entries:
                iid = norm_id(entry.get("imageId"))
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
                if n >= _db.MAX_REGIONS_PER_IMAGE:
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
            for rid in (norm_id(r) for r in region_ids):
                db.execute(
                    "DELETE FROM regions WHERE id=? AND image_id IN (SELECT id FROM images WHERE project_id=?)",
                    (rid, pid),
                )
            self._bump(db, pid)

    def update_metadata(self, project_id: str, image_ids: Sequence[str], metadata: dict) -> list[dict]:
        with self._tx() as db:
            pid = self._project_row(db, project_id)["id"]
            out: list[dict] = []
            for iid in (norm_id(i) for i in image_ids):
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

