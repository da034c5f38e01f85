"""Training API handlers for labelling help: suggested tags and regions of untagged images (from
the trained model's predictions, stored per iteration), the queries over them, region proposals
(from the trainer's detection features) and adding stored predictions' images to the project."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
from aiohttp import web

from . import _routes_images as images
from ._cancel import checkpoint, run_cpu
from ._db import norm_id, utcnow
from ._errors import ApiError
from ._http import image_json, json_response, q_list, q_str, read_json
from ._ingest import Upload
from ._routing import Handler, run
from ._routing import pid as _pid
from ._routing import state as _st
from ._scoring import predictions_json, uncertainty
from ._state import EmulatorState

__all__ = ["suggestion_routes"]

MAX_SUGGEST_IMAGES = 64
_SORTS = ("UncertaintyAscending", "UncertaintyDescending")


# -- suggested tags and regions ------------------------------------------------------------------
async def _suggest(st: EmulatorState, iteration: dict, targets: list[tuple[str, str]]) -> list[dict]:
    """Score (image id, sha256) pairs with the iteration's model and store the suggestions."""
    if not targets:
        return []
    try:
        model = await st.models.get(iteration["id"])
    except FileNotFoundError:
        raise ApiError(503, "ErrorPredictionModelNotFound", "The iteration's model is not available") from None

    def work() -> list[dict]:
        from ._features import UndecodableImageError  # late: the trainer loads only when a model is used

        rows = []
        for image_id, sha in targets:
            checkpoint()  # a stop or a closed request ends a long scoring run
            try:
                scored = model.predict(st.blobs.get(sha))
            except (UndecodableImageError, OSError):
                scored = []  # nothing to suggest for a file that cannot be read
            predictions = predictions_json(scored, iteration["tags"])
            rows.append({"imageId": image_id, "created": utcnow(), "predictions": predictions,
                         "predictionUncertainty": uncertainty(predictions)})
        st.store.save_suggestions(iteration["project_id"], iteration["id"], rows)
        return rows

    return await run_cpu(work, limiter=st.cpu)  # cancellable: a stop does not wait for it


async def suggest_tags_and_regions(request: web.Request) -> web.Response:
    st = _st(request)
    pid = _pid(request)
    iteration_id = q_str(request, "iterationId", required=True) or ""
    ids = q_list(request, "imageIds")
    if not ids:
        raise ApiError(400, "BadRequestRequiredParamIsNull", "The parameter imageIds is required")
    if len(ids) > MAX_SUGGEST_IMAGES:
        raise ApiError(400, "BadRequestExceededBatchSize", f"At most {MAX_SUGGEST_IMAGES} images per batch")
    iteration = await run(st.store.trained_iteration, pid, iteration_id)
    targets = await run(st.store.image_blobs, pid, ids)
    rows = await _suggest(st, iteration, targets)
    return json_response([
        {"id": r["imageId"], "project": iteration["project_id"], "iteration": iteration["id"],
         "created": r["created"], "predictions": r["predictions"],
         "predictionUncertainty": r["predictionUncertainty"]}
        for r in rows
    ])


async def _untagged_suggestions(st: EmulatorState, iteration: dict) -> list[dict]:
    """Suggestions of every untagged image: the ones not scored yet by this iteration are scored
    now (once; stored), so a query never depends on which images someone asked about before."""
    lock = st.perf_locks.setdefault(("suggestions", iteration["id"]), anyio.Lock())
    async with lock:  # concurrent queries score each image once
        missing = await run(st.store.untagged_without_suggestion, iteration["project_id"], iteration["id"])
        await _suggest(st, iteration, missing)
    return await run(st.store.untagged_suggestions, iteration["project_id"], iteration["id"])


def _tag_filter(body: Any) -> tuple[list[str], float]:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequestInvalid", "The body must be a JSON object")
    tags = body.get("tagIds") or []
    if not isinstance(tags, list):
        raise ApiError(400, "BadRequestInvalid", "tagIds must be an array")
    try:
        threshold = float(body.get("threshold") or 0.0)
    except (TypeError, ValueError):
        raise ApiError(400, "BadRequestInvalid", "threshold must be a number") from None
    return [norm_id(t) for t in tags], threshold


def _hits(row: dict, tag_ids: list[str], threshold: float) -> set[str]:
    """The tags (of ``tag_ids``, or any) the image is suggested for at ``threshold`` or above."""
    return {p["tagId"] for p in row["predictions"]
            if p["probability"] >= threshold and (not tag_ids or p["tagId"] in tag_ids)}


async def query_suggested_images(request: web.Request) -> web.Response:
    st = _st(request)
    pid = _pid(request)
    iteration_id = q_str(request, "iterationId", required=True) or ""
    body = await read_json(request)
    tag_ids, threshold = _tag_filter(body)
    sort_by = body.get("sortBy") or _SORTS[0]
    if sort_by not in _SORTS:
        raise ApiError(400, "BadRequestInvalid", f"sortBy must be one of {', '.join(_SORTS)}")
    try:
        count = int(body.get("maxCount") or 50)
        start = int(body.get("continuation") or 0)
    except (TypeError, ValueError):
        raise ApiError(400, "BadRequestInvalid", "maxCount and continuation must be integers") from None
    if not 1 <= count <= 256 or start < 0:
        raise ApiError(400, "BadRequestInvalid", "maxCount must be 1..256")
    iteration = await run(st.store.trained_iteration, pid, iteration_id)
    rows = [r for r in await _untagged_suggestions(st, iteration) if _hits(r, tag_ids, threshold)]
    rows.sort(key=lambda r: r["predictionUncertainty"], reverse=sort_by == _SORTS[1])  # stable: upload order
    page = rows[start:start + count]
    records = {r["id"]: r for r in await run(st.store.get_images_by_ids, iteration["project_id"],
                                             [r["imageId"] for r in page])}
    results = []
    for r in page:
        record = records.get(r["imageId"])
        if record is None:
            continue  # deleted between the two reads
        image = image_json(record, request, iteration["project_id"])
        results.append({
            "width": image["width"], "height": image["height"], "resizedImageUri": image["resizedImageUri"],
            "thumbnailUri": image["thumbnailUri"], "originalImageUri": image["originalImageUri"],
            "domain": iteration["domain_id"], "id": r["imageId"], "project": iteration["project_id"],
            "iteration": iteration["id"], "created": r["created"], "predictions": r["predictions"],
            "predictionUncertainty": r["predictionUncertainty"],
        })
    following = start + count if start + count < len(rows) else None
    token = {"tagIds": tag_ids, "threshold": threshold, "session": f"0:{len(rows)}",
             "continuation": str(following) if following is not None else None, "maxCount": count,
             "sortBy": sort_by}
    return json_response({"token": token, "results": results})


async def query_suggested_image_count(request: web.Request) -> web.Response:
    st = _st(request)
    pid = _pid(request)
    iteration_id = q_str(request, "iterationId", required=True) or ""
    tag_ids, threshold = _tag_filter(await read_json(request))
    iteration = await run(st.store.trained_iteration, pid, iteration_id)
    wanted = tag_ids or [t["id"] for t in iteration["tags"]]
    counts = dict.fromkeys(wanted, 0)
    for row in await _untagged_suggestions(st, iteration):
        for tag in _hits(row, wanted, threshold):
            counts[tag] += 1
    return json_response(counts)


# -- region proposals -------------------------------------------------------------------------------
def _proposals(st: EmulatorState, sha: str) -> list[dict]:
    from ._features import UndecodableImageError  # late: the emulator starts without the trainer
    from ._proposals import region_proposals

    try:
        found = region_proposals(st.blobs.get(sha))
    except (UndecodableImageError, OSError):
        return []  # the spec: an empty array when there is nothing to propose
    return [{"confidence": p, "boundingBox": {"left": b.left, "top": b.top, "width": b.width, "height": b.height}}
            for p, b in found]


async def get_image_region_proposals(request: web.Request) -> web.Response:
    st = _st(request)
    pid = _pid(request)
    (image_id, sha), = await run(st.store.image_blobs, pid, [request.match_info["imageId"]])
    proposals = await run(_proposals, st, sha, limiter=st.cpu)
    return json_response({"projectId": norm_id(pid), "imageId": image_id, "proposals": proposals})


# -- images from stored predictions -------------------------------------------------------------------
def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


async def create_images_from_predictions(request: web.Request) -> web.Response:
    """ImageIdCreateBatch: each entry's ``id`` is a stored prediction (a prediction with store,
    or a quick test); its image joins the project, ``sourceUrl`` echoing the id."""
    st = _st(request)
    entries, tag_ids, metadata = images._batch(await read_json(request))
    ids = [str(e.get("id") or "") if isinstance(e, dict) else "" for e in entries]
    known = await run(st.store.prediction_blobs, _pid(request), [i for i in ids if _is_uuid(i)])

    def uploads() -> list[Upload]:
        out = []
        for raw, entry in zip(ids, entries):
            tags, regions = images._entry_tags(entry if isinstance(entry, dict) else {})
            sha = known.get(norm_id(raw)) if _is_uuid(raw) else None
            try:
                data = st.blobs.get(sha) if sha else None
            except OSError:
                data = None
            out.append(Upload(raw, data, tags, regions, None if data is not None else "ErrorSource"))
        return out

    return await images._create(request, await run(uploads), tag_ids, metadata)


def suggestion_routes() -> list[tuple[str, str, Handler, str]]:
    """(method, path under the training prefix, handler, operationId)."""
    p = "/projects/{projectId}"
    return [
        ("POST", p + "/images/{imageId}/regionproposals", get_image_region_proposals, "GetImageRegionProposals"),
        ("POST", p + "/images/predictions", create_images_from_predictions, "CreateImagesFromPredictions"),
        ("POST", p + "/images/suggested", query_suggested_images, "QuerySuggestedImages"),
        ("POST", p + "/images/suggested/count", query_suggested_image_count, "QuerySuggestedImageCount"),
        ("POST", p + "/tagsandregions/suggestions", suggest_tags_and_regions, "SuggestTagsAndRegions"),
    ]
