"""Training API handlers for images: create (data, files, URLs), read, page, count, tag, delete."""

from __future__ import annotations

from typing import Any

import anyio
from aiohttp import web

from ._errors import ApiError
from ._filter import parse_filter
from ._http import (
    IMAGES,
    MAX_BATCH_IMAGES,
    MAX_BATCH_TAGS,
    image_json,
    image_views,
    json_response,
    q_bool,
    q_int,
    q_list,
    q_str,
    read_json,
)
from ._imaging import TRAINING_MAX_BYTES
from ._ingest import Upload, fetch_url, prepare_uploads
from ._routing import Handler, run
from ._routing import pid as _pid
from ._routing import state as _st

__all__ = [
    "create_images_from_data", "create_images_from_files", "create_images_from_urls",
    "create_image_regions", "delete_image_regions", "create_image_tags", "delete_image_tags",
    "update_image_metadata", "get_images_by_ids", "delete_images", "images_handler",
    "count_handler",
]


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
    images = []
    for source_url, status, record in results:
        entry: dict[str, Any] = {"sourceUrl": source_url, "status": status}
        if record is not None:
            entry["image"] = image_json(record, request, pid, created=True)
        images.append(entry)
    ok = all(status == "OK" for _, status, _ in results)
    return json_response({"isBatchSuccessful": ok, "images": images}, status=200 if ok else 207)


async def create_images_from_data(request: web.Request) -> web.Response:
    tag_ids = q_list(request, "tagIds")
    _check_batch_tags(tag_ids)
    async with image_views(request) as images:  # views of one buffer: each image copied once
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
        "metadata_filter": parse_filter(q_str(request, "$filter")),
    }


def images_handler(tagging: str | None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        status = tagging if tagging is not None else q_str(request, "taggingStatus")
        args = _paging(request, status)
        records = await run(lambda: _st(request).store.get_images(_pid(request), **args))
        return json_response([image_json(r, request, _pid(request)) for r in records])

    return handler


def count_handler(tagging: str | None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        status = tagging if tagging is not None else q_str(request, "taggingStatus")
        tag_ids = q_list(request, "tagIds")
        metadata_filter = parse_filter(q_str(request, "$filter"))
        count = await run(lambda: _st(request).store.count_images(_pid(request), tagging_status=status,
                                                                 tag_ids=tag_ids, metadata_filter=metadata_filter))
        return json_response(count)

    return handler


async def get_images_by_ids(request: web.Request) -> web.Response:
    ids = q_list(request, "imageIds")
    if len(ids) > 256:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 256 imageIds")
    records = await run(_st(request).store.get_images_by_ids, _pid(request), ids)
    return json_response([image_json(r, request, _pid(request)) for r in records])


async def delete_images(request: web.Request) -> web.Response:
    ids = q_list(request, "imageIds")
    all_images = q_bool(request, "allImages")
    if not ids and not all_images:
        raise ApiError(400, "BadRequestRequiredParamIsNull", "Give imageIds or allImages=true")
    if len(ids) > 256:
        raise ApiError(400, "BadRequestExceededBatchSize", "At most 256 images per batch")
    await run(_st(request).store.delete_images, _pid(request), ids, all_images)
    return web.Response(status=204)


