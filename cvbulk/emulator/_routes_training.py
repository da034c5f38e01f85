"""Training API handlers: /customvision/{version}/training/..."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from aiohttp import web

from ._domains import DOMAINS, domain_by_id
from ._errors import ApiError, not_found
from ._http import (
    IMAGES, MAX_BATCH_IMAGES, MAX_BATCH_TAGS, base_url, image_json, json_response, q_bool, q_int, q_list,
    q_str, read_images, read_json,
)
from ._imaging import PREDICTION_MAX_BYTES, TRAINING_MAX_BYTES
from ._ingest import Upload, fetch_url, prepare_uploads
from ._models import evaluate_iteration
from ._predict import predict_image
from ._state import STATE, EmulatorState

__all__ = ["TRAINING_PREFIX", "training_routes"]

TRAINING_PREFIX = r"/customvision/{version:v3\.[0-3]|v3\.4-preview}/{api:[Tt]raining}"
run = anyio.to_thread.run_sync
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _st(request: web.Request) -> EmulatorState:
    return request.app[STATE]


def _pid(request: web.Request) -> str:
    return request.match_info["projectId"]


# -- domains ------------------------------------------------------------------------------------
async def get_domains(request: web.Request) -> web.Response:
    return json_response(DOMAINS)


async def get_domain(request: web.Request) -> web.Response:
    try:
        domain = domain_by_id(str(uuid.UUID(request.match_info["domainId"])))
    except ValueError:
        domain = None
    if domain is None:
        raise not_found("Domain", request.match_info["domainId"])
    return json_response(domain)


# -- projects -------------------------------------------------------------------------------------
async def get_projects(request: web.Request) -> web.Response:
    return json_response(await run(_st(request).store.get_projects))


async def create_project(request: web.Request) -> web.Response:
    st = _st(request)
    project = await run(
        lambda: st.store.create_project(
            q_str(request, "name", required=True) or "", q_str(request, "description") or "",
            q_str(request, "domainId"), q_str(request, "classificationType"),
            q_list(request, "targetExportPlatforms"),
        )
    )
    return json_response(project)


async def get_project(request: web.Request) -> web.Response:
    return json_response(await run(_st(request).store.get_project, _pid(request)))


async def update_project(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response(await run(_st(request).store.update_project, _pid(request), body or {}))


async def delete_project(request: web.Request) -> web.Response:
    await run(_st(request).store.delete_project, _pid(request))
    return web.Response(status=204)


# -- tags ---------------------------------------------------------------------------------------------
async def get_tags(request: web.Request) -> web.Response:
    return json_response(await run(_st(request).store.get_tags, _pid(request), q_str(request, "iterationId")))


async def create_tag(request: web.Request) -> web.Response:
    st = _st(request)
    tag = await run(
        st.store.create_tag, _pid(request), q_str(request, "name", required=True) or "",
        q_str(request, "description") or "", q_str(request, "type") or "Regular",
    )
    return json_response(tag)


async def get_tag(request: web.Request) -> web.Response:
    return json_response(await run(_st(request).store.get_tag, _pid(request), request.match_info["tagId"]))


async def update_tag(request: web.Request) -> web.Response:
    body = await read_json(request)
    tag = await run(_st(request).store.update_tag, _pid(request), request.match_info["tagId"], body or {})
    return json_response(tag)


async def delete_tag(request: web.Request) -> web.Response:
    await run(_st(request).store.delete_tag, _pid(request), request.match_info["tagId"])
    return web.Response(status=204)


# -- creating images ---------------------------------------------------------------------------------
def _check_batch_tags(tag_ids: list[str]) -> None:
    if len(tag_ids) > MAX_BATCH_TAGS:
        raise ApiError(400, "BadRequestExceededBatchSize", f"Too many tags: at most {MAX_BATCH_TAGS} per batch")


async def _create(request: web.Request, uploads: list[Upload], tag_ids: list[str],
                  metadata: dict | None = None) -> web.Response:
    st = _st(request)
    request[IMAGES] = len(uploads)
    pid = _pid(request)

    def work():
        items = prepare_uploads(st.blobs, uploads)
        return st.store.add_images(pid, items, tag_ids, metadata)

    results = await run(work)
    base = base_url(request)
    images = []
    for source_url, status, record in results:
        entry: dict[str, Any] = {"sourceUrl": source_url, "status": status}
        if record is not None:
            entry["image"] = image_json(record, base)
        images.append(entry)
    ok = all(status == "OK" for _, status, _ in results)
    return json_response({"isBatchSuccessful": ok, "images": images}, status=200 if ok else 207)


async def create_images_from_data(request: web.Request) -> web.Response:
    tag_ids = q_list(request, "tagIds")
    _check_batch_tags(tag_ids)
    images = await read_images(request)
    return await _create(request, [Upload(src, data) for src, data in images], tag_ids)


def _batch(body: Any) -> tuple[list[dict], list[str], dict | None]:
    if not isinstance(body, dict) or not isinstance(body.get("images"), list) or not body["images"]:
        raise ApiError(400, "BadRequestImageBatch", "The batch has no images")
    if len(body["images"]) > MAX_BATCH_IMAGES:
        raise ApiError(400, "BadRequestImageBatch", f"Too many images: at most {MAX_BATCH_IMAGES} per batch")
    tag_ids = list(body.get("tagIds") or [])
    _check_batch_tags(tag_ids)
    metadata = body.get("metadata") or None
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 50):
        raise ApiError(400, "BadRequestImageMetadataKey", "At most 50 metadata pairs per image")
    return body["images"], tag_ids, metadata


def _entry_tags(entry: dict) -> tuple[list[str], list[dict]]:
    tags = entry.get("tagIds") or []
    regions = entry.get("regions") or []
    if not isinstance(tags, list) or not isinstance(regions, list):
        raise ApiError(400, "BadRequestImageBatch", "tagIds and regions must be arrays")
    return tags, regions


async def create_images_from_files(request: web.Request) -> web.Response:
    entries, tag_ids, metadata = _batch(await read_json(request))
    uploads = []
    for entry in entries:
        tags, regions = _entry_tags(entry)
        uploads.append(Upload(f'"{entry.get("name") or ""}"', None, tags, regions,
                              base64=entry.get("contents") or b""))
    return await _create(request, uploads, tag_ids, metadata)


async def create_images_from_urls(request: web.Request) -> web.Response:
    entries, tag_ids, metadata = _batch(await read_json(request))
    st = _st(request)
    uploads: list[Upload | None] = [None] * len(entries)

    async def one(i: int, entry: dict) -> None:
        tags, regions = _entry_tags(entry)
        url = str(entry.get("url") or "")
        got = await fetch_url(st.http, url, TRAINING_MAX_BYTES) if st.http else "ErrorSource"
        if isinstance(got, str):
            uploads[i] = Upload(url, None, tags, regions, got)
        else:
            uploads[i] = Upload(url, got, tags, regions)

    async with anyio.create_task_group() as tg:
        for i, entry in enumerate(entries):
            tg.start_soon(one, i, entry if isinstance(entry, dict) else {})
    return await _create(request, [u for u in uploads if u is not None], tag_ids, metadata)


async def create_image_regions(request: web.Request) -> web.Response:
    body = await read_json(request)
    regions = body.get("regions") if isinstance(body, dict) else None
    if not isinstance(regions, list) or not regions:
        raise ApiError(400, "BadRequestImageRegions", "The batch has no regions")
    if len(regions) > MAX_BATCH_IMAGES:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 64 regions per batch")
    summary = await run(_st(request).store.create_image_regions, _pid(request), regions)
    status = 207 if summary["duplicated"] or summary["exceeded"] else 200
    return json_response(summary, status=status)


async def delete_image_regions(request: web.Request) -> web.Response:
    ids = q_list(request, "regionIds")
    if not ids or len(ids) > 64:
        raise ApiError(400, "BadRequestExceededBatchSize", "Give 1 to 64 regionIds")
    await run(_st(request).store.delete_image_regions, _pid(request), ids)
    return web.Response(status=204)


async def create_image_tags(request: web.Request) -> web.Response:
    body = await read_json(request)
    tags = body.get("tags") if isinstance(body, dict) else None
    if not isinstance(tags, list) or not tags:
        raise ApiError(400, "BadRequestImageTags", "The batch has no tags")
    if len(tags) > 128:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 128 tags per batch")
    pairs = [(t.get("imageId"), t.get("tagId")) for t in tags if isinstance(t, dict)]
    return json_response(await run(_st(request).store.create_image_tags, _pid(request), pairs))


async def delete_image_tags(request: web.Request) -> web.Response:
    image_ids, tag_ids = q_list(request, "imageIds"), q_list(request, "tagIds")
    if not image_ids or not tag_ids:
        raise ApiError(400, "BadRequestRequiredParamIsNull", "imageIds and tagIds are required")
    if len(image_ids) > 64 or len(tag_ids) > MAX_BATCH_TAGS:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 64 images and 20 tags")
    await run(_st(request).store.delete_image_tags, _pid(request), image_ids, tag_ids)
    return web.Response(status=204)


async def update_image_metadata(request: web.Request) -> web.Response:
    ids = q_list(request, "imageIds")
    metadata = await read_json(request)
    if not ids or len(ids) > 256 or not isinstance(metadata, dict):
        raise ApiError(400, "BadRequestInvalidIds", "Give 1 to 256 imageIds and a JSON object")
    results = await run(_st(request).store.update_metadata, _pid(request), ids, metadata)
    ok = all(r["status"] == "OK" for r in results)
    return json_response({"isBatchSuccessful": ok, "images": results}, status=200 if ok else 207)


# -- reading images ----------------------------------------------------------------------------------
def _paging(request: web.Request, tagging_status: str | None) -> dict:
    tag_ids = q_list(request, "tagIds")
    if len(tag_ids) > MAX_BATCH_TAGS:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 20 tagIds")
    return {
        "tagging_status": tagging_status, "tag_ids": tag_ids, "order_by": q_str(request, "orderBy"),
        "take": q_int(request, "take", 50, high=256), "skip": q_int(request, "skip", 0),
    }


def _images_handler(tagging: str | None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        status = tagging if tagging is not None else q_str(request, "taggingStatus")
        args = _paging(request, status)
        records = await run(lambda: _st(request).store.get_images(_pid(request), **args))
        base = base_url(request)
        return json_response([image_json(r, base) for r in records])

    return handler


def _count_handler(tagging: str | None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        status = tagging if tagging is not None else q_str(request, "taggingStatus")
        tag_ids = q_list(request, "tagIds")
        count = await run(lambda: _st(request).store.count_images(_pid(request), tagging_status=status,
                                                                 tag_ids=tag_ids))
        return json_response(count)

    return handler


async def get_images_by_ids(request: web.Request) -> web.Response:
    ids = q_list(request, "imageIds")
    if len(ids) > 256:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 256 imageIds")
    records = await run(_st(request).store.get_images_by_ids, _pid(request), ids)
    base = base_url(request)
    return json_response([image_json(r, base) for r in records])


async def delete_images(request: web.Request) -> web.Response:
    ids = q_list(request, "imageIds")
    all_images = q_bool(request, "allImages")
    if not ids and not all_images:
        raise ApiError(400, "BadRequestRequiredParamIsNull", "Give imageIds or allImages=true")
    if len(ids) > 256:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 256 images per batch")
    await run(_st(request).store.delete_images, _pid(request), ids, all_images)
    return web.Response(status=204)


# -- training and iterations ------------------------------------------------------------------------
async def train_project(request: web.Request) -> web.Response:
    st = _st(request)
    body = await read_json(request, required=False)
    selected = (body or {}).get("selectedTags") if isinstance(body, dict) else None
    training_type = q_str(request, "trainingType") or "Regular"
    if training_type not in ("Regular", "Advanced"):
        raise ApiError(400, "BadRequestInvalid", f"Unknown trainingType: {training_type}")
    iteration, job = await run(lambda: st.store.start_training(
        _pid(request), training_type=training_type, budget=q_int(request, "reservedBudgetInHours", 0),
        force=q_bool(request, "forceTrain"), selected_tags=selected,
    ))
    st.start_training(job)
    return json_response(iteration)


async def get_iterations(request: web.Request) -> web.Response:
    return json_response(await run(_st(request).store.get_iterations, _pid(request)))


async def get_iteration(request: web.Request) -> web.Response:
    return json_response(await run(_st(request).store.get_iteration, _pid(request), request.match_info["iterationId"]))


async def update_iteration(request: web.Request) -> web.Response:
    body = await read_json(request)
    it = await run(_st(request).store.update_iteration, _pid(request), request.match_info["iterationId"],
                   body if isinstance(body, dict) else {})
    return json_response(it)


async def delete_iteration(request: web.Request) -> web.Response:
    await run(_st(request).store.delete_iteration, _pid(request), request.match_info["iterationId"])
    return web.Response(status=204)


async def get_iteration_performance(request: web.Request) -> web.Response:
    st = _st(request)
    state = await run(lambda: st.store.iteration_state(_pid(request), request.match_info["iterationId"],
                                                      samples=True))
    if state["status"] != "Completed":
        raise ApiError(404, "NotFoundIterationPerformance", "The iteration has no performance: it is not trained")
    try:
        threshold = float(q_str(request, "threshold") or 0.5)
    except ValueError:
        raise ApiError(400, "BadRequestInvalid", "threshold must be a number") from None
    if not 0.0 <= threshold <= 1.0:
        raise ApiError(400, "BadRequestInvalid", "threshold must be between 0 and 1")
    default = abs(threshold - 0.5) < 1e-9
    if default and state["performance"] is not None:
        return json_response(state["performance"])
    key = (state["id"], round(threshold, 6))
    lock = st.perf_locks.setdefault(key, anyio.Lock())
    async with lock:  # concurrent askers wait for one computation
        perf = st.perf_cache.get(key)
        if perf is None:
            perf = await run(evaluate_iteration, st.blobs, state, threshold, st.config.seed, limiter=st.cpu)
            st.perf_cache[key] = perf
            if default:
                await run(st.store.save_performance, state["id"], perf)
    return json_response(perf)


async def publish_iteration(request: web.Request) -> web.Response:
    name = q_str(request, "publishName", required=True) or ""
    resource = q_str(request, "predictionId", required=True) or ""
    await run(_st(request).store.publish, _pid(request), request.match_info["iterationId"], name, resource,
              q_bool(request, "overwrite"))
    return json_response(True)


async def unpublish_iteration(request: web.Request) -> web.Response:
    await run(_st(request).store.unpublish, _pid(request), request.match_info["iterationId"])
    return web.Response(status=204)


async def _quick_test(request: web.Request, data: bytes) -> web.Response:
    st = _st(request)
    pid = _pid(request)
    iteration_id = q_str(request, "iterationId") or await run(st.store.latest_completed, pid)
    state = await run(st.store.iteration_state, pid, iteration_id)
    if state["status"] != "Completed":
        raise ApiError(400, "BadRequestIterationIsNotTrained", "The iteration is not trained")
    result = await predict_image(st, pid, state, data, with_tag_type=True, store=q_bool(request, "store", True))
    return json_response(result)


async def quick_test_image(request: web.Request) -> web.Response:
    images = await read_images(request, limit=1)
    request[IMAGES] = 1
    return await _quick_test(request, images[0][1])


async def quick_test_image_url(request: web.Request) -> web.Response:
    body = await read_json(request)
    url = body.get("url") if isinstance(body, dict) else None
    if not url:
        raise ApiError(400, "BadRequestImageUrl", "The body needs a url")
    st = _st(request)
    got = await fetch_url(st.http, url, PREDICTION_MAX_BYTES) if st.http else "ErrorSource"
    if isinstance(got, str):
        raise ApiError(400, "BadRequestImageUrl", "The image URL could not be read")
    request[IMAGES] = 1
    return await _quick_test(request, got)


# -- stored predictions ---------------------------------------------------------------------------------
async def query_predictions(request: web.Request) -> web.Response:
    query = await read_json(request)
    if not isinstance(query, dict):
        raise ApiError(400, "BadRequestPredictionInvalidQueryParameters", "The query must be a JSON object")
    results, next_offset = await run(_st(request).store.query_predictions, _pid(request), query)
    base = base_url(request)
    out = []
    for r in results:
        blob = f"{base}/emulator/blobs/{r.pop('_sha')}"
        out.append({"resizedImageUri": f"{blob}/resized", "thumbnailUri": f"{blob}/thumbnail",
                    "originalImageUri": blob, **r})
    token = {**query, "continuation": str(next_offset) if next_offset is not None else None}
    return json_response({"token": token, "results": out})


async def delete_prediction(request: web.Request) -> web.Response:
    ids = q_list(request, "ids")
    if not ids:
        raise ApiError(400, "BadRequestPredictionIdsMissing", "Give the ids of the predictions to delete")
    if len(ids) > 64:
        raise ApiError(400, "BadRequestPredictionIdsExceededCount", "At most 64 ids")
    await run(_st(request).store.delete_predictions, _pid(request), ids)
    return web.Response(status=204)


# -- export / import ----------------------------------------------------------------------------------
async def export_project(request: web.Request) -> web.Response:
    st = _st(request)
    snap = await run(st.store.export_snapshot, _pid(request))
    token_id = uuid.uuid4().hex
    path = st.data_dir / "exports" / f"{token_id}.json"
    await run(path.write_text, json.dumps(snap))
    token = base64.urlsafe_b64encode(json.dumps({"id": token_id, "origin": base_url(request)}).encode()).decode()
    return json_response({
        "iterationCount": snap["iterationCount"], "imageCount": len(snap["images"]), "tagCount": len(snap["tags"]),
        "regionCount": len(snap["regions"]), "estimatedImportTimeInMS": 100 + 2 * len(snap["images"]),
        "token": token,
    })


async def import_project(request: web.Request) -> web.Response:
    from ._transfer import import_from_token

    st = _st(request)
    token = q_str(request, "token", required=True) or ""
    project = await import_from_token(st, token, q_str(request, "name"))
    return json_response(project)


def training_routes() -> list[tuple[str, str, Handler, str]]:
    """(method, path under the prefix, handler, operationId), in matching order."""
    p = "/projects/{projectId}"
    return [
        ("GET", "/domains", get_domains, "GetDomains"),
        ("GET", "/domains/{domainId}", get_domain, "GetDomain"),
        ("POST", "/projects/import", import_project, "ImportProject"),
        ("GET", "/projects", get_projects, "GetProjects"),
        ("POST", "/projects", create_project, "CreateProject"),
        ("GET", p, get_project, "GetProject"),
        ("PATCH", p, update_project, "UpdateProject"),
        ("DELETE", p, delete_project, "DeleteProject"),
        ("GET", p + "/export", export_project, "ExportProject"),
        ("GET", p + "/images/count", _count_handler(None), "GetImageCount"),
        ("GET", p + "/images/tagged/count", _count_handler("Tagged"), "GetTaggedImageCount"),
        ("GET", p + "/images/untagged/count", _count_handler("Untagged"), "GetUntaggedImageCount"),
        ("GET", p + "/images/tagged", _images_handler("Tagged"), "GetTaggedImages"),
        ("GET", p + "/images/untagged", _images_handler("Untagged"), "GetUntaggedImages"),
        ("GET", p + "/images/id", get_images_by_ids, "GetImagesByIds"),
        ("POST", p + "/images/files", create_images_from_files, "CreateImagesFromFiles"),
        ("POST", p + "/images/urls", create_images_from_urls, "CreateImagesFromUrls"),
        ("POST", p + "/images/regions", create_image_regions, "CreateImageRegions"),
        ("DELETE", p + "/images/regions", delete_image_regions, "DeleteImageRegions"),
        ("POST", p + "/images/tags", create_image_tags, "CreateImageTags"),
        ("DELETE", p + "/images/tags", delete_image_tags, "DeleteImageTags"),
        ("POST", p + "/images/metadata", update_image_metadata, "UpdateImageMetadata"),
        ("GET", p + "/images", _images_handler(None), "GetImages"),
        ("POST", p + "/images", create_images_from_data, "CreateImagesFromData"),
        ("DELETE", p + "/images", delete_images, "DeleteImages"),
        ("GET", p + "/tags", get_tags, "GetTags"),
        ("POST", p + "/tags", create_tag, "CreateTag"),
        ("GET", p + "/tags/{tagId}", get_tag, "GetTag"),
        ("PATCH", p + "/tags/{tagId}", update_tag, "UpdateTag"),
        ("DELETE", p + "/tags/{tagId}", delete_tag, "DeleteTag"),
        ("POST", p + "/train", train_project, "TrainProject"),
        ("GET", p + "/iterations", get_iterations, "GetIterations"),
        ("GET", p + "/iterations/{iterationId}", get_iteration, "GetIteration"),
        ("PATCH", p + "/iterations/{iterationId}", update_iteration, "UpdateIteration"),
        ("DELETE", p + "/iterations/{iterationId}", delete_iteration, "DeleteIteration"),
        ("GET", p + "/iterations/{iterationId}/performance", get_iteration_performance, "GetIterationPerformance"),
        ("POST", p + "/iterations/{iterationId}/publish", publish_iteration, "PublishIteration"),
        ("DELETE", p + "/iterations/{iterationId}/publish", unpublish_iteration, "UnpublishIteration"),
        ("POST", p + "/predictions/query", query_predictions, "QueryPredictions"),
        ("DELETE", p + "/predictions", delete_prediction, "DeletePrediction"),
        ("POST", p + "/quicktest/image", quick_test_image, "QuickTestImage"),
        ("POST", p + "/quicktest/url", quick_test_image_url, "QuickTestImageUrl"),
    ]


