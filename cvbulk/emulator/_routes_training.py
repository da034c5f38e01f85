"""Training API handlers: /customvision/{version}/training/... (domains, projects, tags, export and
import here; images and iterations in their own modules) and the route table."""

from __future__ import annotations

import uuid

from aiohttp import web

from . import _routes_images as images
from . import _routes_iterations as iterations
from ._domains import DOMAINS, domain_by_id
from ._errors import not_found
from ._http import blob_uris, json_response, project_view, q_list, q_str, read_json
from ._routing import Handler, run
from ._routing import pid as _pid
from ._routing import state as _st

__all__ = ["TRAINING_PREFIX", "training_routes"]

TRAINING_PREFIX = r"/customvision/{version:v3\.[0-3]|v3\.4-preview}/{api:[Tt]raining}"


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
async def _with_thumbnails(request: web.Request, projects: list[dict]) -> list[dict]:
    # The service shows a project's newest image as its thumbnail (null while it has none).
    thumbs = await run(_st(request).store.project_thumbnails)
    for p in projects:
        if p["id"] in thumbs:
            p["thumbnailUri"] = blob_uris(request, p["id"], thumbs[p["id"]])["thumbnailUri"]
    return [project_view(request, p) for p in projects]


async def get_projects(request: web.Request) -> web.Response:
    found = await run(_st(request).store.get_projects)
    return json_response(await _with_thumbnails(request, found))


async def create_project(request: web.Request) -> web.Response:
    st = _st(request)
    project = await run(
        lambda: st.store.create_project(
            q_str(request, "name", required=True) or "", q_str(request, "description") or "",
            q_str(request, "domainId"), q_str(request, "classificationType"),
            q_list(request, "targetExportPlatforms"),
        )
    )
    return json_response(project_view(request, project))


async def get_project(request: web.Request) -> web.Response:
    project = await run(_st(request).store.get_project, _pid(request))
    return json_response((await _with_thumbnails(request, [project]))[0])


async def update_project(request: web.Request) -> web.Response:
    body = await read_json(request)
    project = await run(_st(request).store.update_project, _pid(request), body or {})
    return json_response(project_view(request, project))


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


# -- export / import ----------------------------------------------------------------------------------
async def export_project(request: web.Request) -> web.Response:
    from ._transfer import export_project as export

    return await export(request, _st(request), _pid(request))


async def import_project(request: web.Request) -> web.Response:
    from ._transfer import import_from_token

    st = _st(request)
    token = q_str(request, "token", required=True) or ""
    project = await import_from_token(st, token, q_str(request, "name"))
    return json_response(project_view(request, project))


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
        ("GET", p + "/images/count", images.count_handler(None), "GetImageCount"),
        ("GET", p + "/images/tagged/count", images.count_handler("Tagged"), "GetTaggedImageCount"),
        ("GET", p + "/images/untagged/count", images.count_handler("Untagged"), "GetUntaggedImageCount"),
        ("GET", p + "/images/tagged", images.images_handler("Tagged"), "GetTaggedImages"),
        ("GET", p + "/images/untagged", images.images_handler("Untagged"), "GetUntaggedImages"),
        ("GET", p + "/images/id", images.get_images_by_ids, "GetImagesByIds"),
        ("POST", p + "/images/files", images.create_images_from_files, "CreateImagesFromFiles"),
        ("POST", p + "/images/urls", images.create_images_from_urls, "CreateImagesFromUrls"),
        ("POST", p + "/images/regions", images.create_image_regions, "CreateImageRegions"),
        ("DELETE", p + "/images/regions", images.delete_image_regions, "DeleteImageRegions"),
        ("POST", p + "/images/tags", images.create_image_tags, "CreateImageTags"),
        ("DELETE", p + "/images/tags", images.delete_image_tags, "DeleteImageTags"),
        ("POST", p + "/images/metadata", images.update_image_metadata, "UpdateImageMetadata"),
        ("GET", p + "/images", images.images_handler(None), "GetImages"),
        ("POST", p + "/images", images.create_images_from_data, "CreateImagesFromData"),
        ("DELETE", p + "/images", images.delete_images, "DeleteImages"),
        ("GET", p + "/tags", get_tags, "GetTags"),
        ("POST", p + "/tags", create_tag, "CreateTag"),
        ("GET", p + "/tags/{tagId}", get_tag, "GetTag"),
        ("PATCH", p + "/tags/{tagId}", update_tag, "UpdateTag"),
        ("DELETE", p + "/tags/{tagId}", delete_tag, "DeleteTag"),
        ("POST", p + "/train", iterations.train_project, "TrainProject"),
        ("GET", p + "/iterations", iterations.get_iterations, "GetIterations"),
        ("GET", p + "/iterations/{iterationId}", iterations.get_iteration, "GetIteration"),
        ("PATCH", p + "/iterations/{iterationId}", iterations.update_iteration, "UpdateIteration"),
        ("DELETE", p + "/iterations/{iterationId}", iterations.delete_iteration, "DeleteIteration"),
        ("GET", p + "/iterations/{iterationId}/performance", iterations.get_iteration_performance, "GetIterationPerformance"),
        ("POST", p + "/iterations/{iterationId}/publish", iterations.publish_iteration, "PublishIteration"),
        ("DELETE", p + "/iterations/{iterationId}/publish", iterations.unpublish_iteration, "UnpublishIteration"),
        ("POST", p + "/predictions/query", iterations.query_predictions, "QueryPredictions"),
        ("DELETE", p + "/predictions", iterations.delete_prediction, "DeletePrediction"),
        ("POST", p + "/quicktest/image", iterations.quick_test_image, "QuickTestImage"),
        ("POST", p + "/quicktest/url", iterations.quick_test_image_url, "QuickTestImageUrl"),
    ]



