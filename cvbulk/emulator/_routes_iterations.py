"""Training API handlers for iterations: train, read, rename, delete, performance, publish,
quick tests and stored predictions."""

from __future__ import annotations

import re

from aiohttp import web

from ._errors import ApiError
from ._http import (
    IMAGES,
    REQUEST_ID,
    blob_uris,
    iteration_view,
    json_response,
    q_bool,
    q_int,
    q_list,
    q_str,
    read_images,
    read_json,
)
from ._imaging import TRAINING_MAX_BYTES
from ._ingest import fetch_url
from ._predict import predict_image
from ._routing import pid as _pid
from ._routing import run
from ._routing import state as _st

__all__ = [
    "train_project", "get_iterations", "get_iteration", "update_iteration", "delete_iteration",
    "get_iteration_performance", "publish_iteration", "unpublish_iteration", "quick_test_image",
    "quick_test_image_url", "query_predictions", "delete_prediction",
]


_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.CognitiveServices/accounts/[^/]+$",
    re.IGNORECASE)


# -- training and iterations ------------------------------------------------------------------------
async def train_project(request: web.Request) -> web.Response:
    st = _st(request)
    body = await read_json(request, required=False)
    selected = (body or {}).get("selectedTags") if isinstance(body, dict) else None
    custom_base = (body or {}).get("customBaseModelInfo") if isinstance(body, dict) else None
    if custom_base is not None and not (isinstance(custom_base, dict) and custom_base.get("projectId")
                                        and custom_base.get("iterationId")):
        raise ApiError(400, "BadRequestInvalid", "customBaseModelInfo needs projectId and iterationId")
    training_type = q_str(request, "trainingType") or "Regular"
    if training_type not in ("Regular", "Advanced"):
        raise ApiError(400, "BadRequestInvalid", f"Unknown trainingType: {training_type}")
    iteration, job = await run(lambda: st.store.start_training(
        _pid(request), training_type=training_type, budget=q_int(request, "reservedBudgetInHours", 0),
        force=q_bool(request, "forceTrain"), selected_tags=selected, custom_base=custom_base,
    ))
    st.start_training(job)
    return json_response(iteration_view(request, iteration))


async def get_iterations(request: web.Request) -> web.Response:
    found = await run(_st(request).store.get_iterations, _pid(request))
    return json_response([iteration_view(request, it) for it in found])


async def get_iteration(request: web.Request) -> web.Response:
    it = await run(_st(request).store.get_iteration, _pid(request), request.match_info["iterationId"])
    return json_response(iteration_view(request, it))


async def update_iteration(request: web.Request) -> web.Response:
    body = await read_json(request)
    it = await run(_st(request).store.update_iteration, _pid(request), request.match_info["iterationId"],
                   body if isinstance(body, dict) else {})
    return json_response(iteration_view(request, it))


async def delete_iteration(request: web.Request) -> web.Response:
    await run(_st(request).store.delete_iteration, _pid(request), request.match_info["iterationId"])
    return web.Response(status=204)


def _fraction(request: web.Request, name: str, default: float) -> float:
    try:
        value = float(q_str(request, name) or default)
    except ValueError:
        raise ApiError(400, "BadRequestInvalid", f"{name} must be a number") from None
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, "BadRequestInvalid", f"{name} must be between 0 and 1")
    return value


async def get_iteration_performance(request: web.Request) -> web.Response:
    """The iteration's evaluation (``_evaluation``: cross-validated on the first request, then stored);
    any threshold and overlapThreshold is a cheap summary of its held-out predictions."""
    from . import _evaluation as ev  # late: the emulator starts without the trainer

    st = _st(request)
    pid = _pid(request)
    state = await run(st.store.iteration_state, pid, request.match_info["iterationId"])
    if state["status"] != "Completed":
        raise ApiError(404, "NotFoundIterationPerformance", "The iteration has no performance: it is not trained")
    threshold = _fraction(request, "threshold", 0.5)
    overlap = _fraction(request, "overlapThreshold", ev.DEFAULT_OVERLAP)
    default = abs(threshold - 0.5) < 1e-9 and abs(overlap - ev.DEFAULT_OVERLAP) < 1e-9
    if default and state["performance"] is not None:
        return json_response(state["performance"])
    evaluation = await ev.stored_evaluation(st, pid, state)
    perf = await run(ev.performance_at, evaluation, state["tags"], threshold, overlap)
    if default:  # the first call: remembered from now
        await run(st.store.save_performance, str(state["id"]), dict(perf))
    return json_response(perf)


async def publish_iteration(request: web.Request) -> web.Response:
    name = q_str(request, "publishName", required=True) or ""
    resource = q_str(request, "predictionId", required=True) or ""
    if not _RESOURCE_ID.match(resource):
        raise ApiError(400, "BadRequestInvalidPublishTarget",
                       "predictionId must be the resource id of a prediction resource: /subscriptions/<id>/"
                       "resourceGroups/<group>/providers/Microsoft.CognitiveServices/accounts/<name>")
    await run(_st(request).store.publish, _pid(request), request.match_info["iterationId"], name, resource,
              q_bool(request, "overwrite"))
    return json_response(True)


async def unpublish_iteration(request: web.Request) -> web.Response:
    await run(_st(request).store.unpublish, _pid(request), request.match_info["iterationId"])
    return web.Response(status=204)


async def _quick_test(request: web.Request, data: bytes, max_bytes: int) -> web.Response:
    st = _st(request)
    pid = _pid(request)
    iteration_id = q_str(request, "iterationId")
    if not iteration_id:
        iteration_id = str(await run(st.store.latest_completed, pid))
    state = await run(st.store.iteration_state, pid, iteration_id)
    if state["status"] != "Completed":
        raise ApiError(400, "BadRequestIterationIsNotTrained", "The iteration is not trained")
    result = await predict_image(st, pid, state, data, with_tag_type=True, store=q_bool(request, "store", True),
                                 request_id=request.get(REQUEST_ID), max_bytes=max_bytes)
    return json_response(result)


async def quick_test_image(request: web.Request) -> web.Response:
    images = await read_images(request, limit=1)
    request[IMAGES] = 1
    return await _quick_test(request, images[0][1], TRAINING_MAX_BYTES)  # quick tests take 6 MB


async def quick_test_image_url(request: web.Request) -> web.Response:
    body = await read_json(request)
    url = body.get("url") if isinstance(body, dict) else None
    if not url:
        raise ApiError(400, "BadRequestImageUrl", "The body needs a url")
    st = _st(request)
    got = await fetch_url(st.http, url, TRAINING_MAX_BYTES) if st.http else "ErrorSource"
    if isinstance(got, str):
        raise ApiError(400, "BadRequestImageUrl", "The image URL could not be read")
    request[IMAGES] = 1
    return await _quick_test(request, got, TRAINING_MAX_BYTES)


# -- stored predictions ---------------------------------------------------------------------------------
async def query_predictions(request: web.Request) -> web.Response:
    query = await read_json(request)
    if not isinstance(query, dict):
        raise ApiError(400, "BadRequestPredictionInvalidQueryParameters", "The query must be a JSON object")
    results, next_offset = await run(_st(request).store.query_predictions, _pid(request), query)
    out = []
    for r in results:
        out.append({**blob_uris(request, _pid(request), r.pop("_sha")), **r})
    # The service answers the whole PredictionQueryToken, every field (null when not given).
    token = {"session": query.get("session"), "continuation": None, "maxCount": query.get("maxCount", 0),
             "orderBy": query.get("orderBy") or "Newest", "tags": query.get("tags"),
             "iterationId": query.get("iterationId"), "startTime": query.get("startTime"),
             "endTime": query.get("endTime"), "application": query.get("application")}
    token["session"] = token["session"] or "1:0"
    token["continuation"] = str(next_offset) if next_offset is not None else None
    return json_response({"token": token, "results": out})


async def delete_prediction(request: web.Request) -> web.Response:
    ids = q_list(request, "ids")
    if not ids:
        raise ApiError(400, "BadRequestPredictionIdsMissing", "Give the ids of the predictions to delete")
    if len(ids) > 64:
        raise ApiError(400, "BadRequestPredictionIdsExceededCount", "At most 64 ids")
    await run(_st(request).store.delete_predictions, _pid(request), ids)
    return web.Response(status=204)


