"""Training API handlers for the per-image performance of an iteration (GetImagePerformances and
its count): the images the evaluation held out, with what the model predicted for each."""

from __future__ import annotations

from aiohttp import web

from ._errors import ApiError
from ._http import MAX_BATCH_TAGS, image_json, json_response, q_int, q_list, q_str
from ._routing import Handler, run
from ._routing import pid as _pid
from ._routing import state as _st

__all__ = ["performance_routes"]


async def _held_out(request: web.Request) -> list[dict]:
    """[{sha, predictions}] of the iteration's held-out images (its evaluation: computed once, off the
    event loop, on the first request, then stored)."""
    st = _st(request)
    pid, iid = _pid(request), request.match_info["iterationId"]
    state = await run(st.store.iteration_state, pid, iid)
    if state["status"] != "Completed":
        raise ApiError(404, "NotFoundIterationPerformance", "The iteration has no performance: it is not trained")
    cached = await run(st.store.image_performances, state["id"])
    if cached is None:
        from . import _evaluation as ev  # late: the emulator starts without the trainer

        evaluation = await ev.stored_evaluation(st, pid, state)
        cached = await run(ev.image_performances, evaluation, state["tags"])
        await run(st.store.save_image_performances, state["id"], cached)
    return cached


async def _performances(request: web.Request, tag_ids: list[str]) -> list[dict]:
    """ImagePerformance objects of the held-out images still in the project, oldest first,
    those tagged (or with a region) with any of ``tag_ids`` when given."""
    st = _st(request)
    pid = _pid(request)
    held = await _held_out(request)
    ids = await run(st.store.image_ids_by_sha, pid, [h["sha"] for h in held])
    records = {r["id"]: r for r in await run(st.store.get_images_by_ids, pid, list(ids.values()))}
    wanted = {t.lower() for t in tag_ids}
    out = []
    for h in held:
        record = records.get(ids.get(h["sha"], ""))
        if record is None:
            continue  # deleted since training
        image = image_json(record, request, pid)
        tags, regions = image.get("tags") or [], image.get("regions") or []
        if wanted and not wanted & ({t["tagId"] for t in tags} | {r["tagId"] for r in regions}):
            continue
        out.append({"id": image["id"], "created": image["created"], "predictions": h["predictions"],
                    "width": image["width"], "height": image["height"], "imageUri": image["resizedImageUri"],
                    "thumbnailUri": image["thumbnailUri"], "tags": tags, "regions": regions})
    return out


async def get_image_performances(request: web.Request) -> web.Response:
    tag_ids = q_list(request, "tagIds")
    if len(tag_ids) > MAX_BATCH_TAGS:
        raise ApiError(400, "BadRequestExceededBatchSize", f"At most {MAX_BATCH_TAGS} tagIds")
    order = (q_str(request, "orderBy") or "Newest").lower()
    if order not in ("newest", "oldest"):
        raise ApiError(400, "BadRequestInvalid", "orderBy must be Newest or Oldest")
    take, skip = q_int(request, "take", 50, high=256), q_int(request, "skip", 0)
    found = await _performances(request, tag_ids)
    if order == "newest":
        found.reverse()
    return json_response(found[skip:skip + take])


async def get_image_performance_count(request: web.Request) -> web.Response:
    return json_response(len(await _performances(request, q_list(request, "tagIds"))))


def performance_routes() -> list[tuple[str, str, Handler, str]]:
    """(method, path under the training prefix, handler, operationId)."""
    p = "/projects/{projectId}/iterations/{iterationId}/performance/images"
    return [
        ("GET", p, get_image_performances, "GetImagePerformances"),
        ("GET", p + "/count", get_image_performance_count, "GetImagePerformanceCount"),
    ]
