"""Training API handlers for files: ExportIteration / GetExports (the model package, built in
the background: ``Exporting`` then ``Done``), GetArtifact (a stored file of the project by its
path or URI), and the download route of the exported packages (signed and expiring, like the
service's SAS URL)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

import anyio
from aiohttp import web

from ._db import utcnow
from ._errors import ApiError
from ._export_package import export_file_name, write_export
from ._http import json_response, q_str, storage_url
from ._imaging import resized_copy
from ._routing import Handler, run
from ._routing import pid as _pid
from ._routing import state as _st
from ._signing import storage_refusal
from ._state import EmulatorState

__all__ = ["export_routes", "download_export", "EXPORT_SECONDS", "MODEL_EXPORTS_DIR"]

log = logging.getLogger("cvbulk.emulator")

EXPORT_SECONDS = 0.3  # the shortest time an export stays Exporting: a poller sees it, as on Azure
MODEL_EXPORTS_DIR = "model-exports"
_FILE = re.compile(r"^[0-9a-f]{32}\.[A-Za-z]+(?:\.[A-Za-z0-9]+)?\.zip$")
# The image URIs blob_uris() gives: /emulator/blobs/<project>/<size>/<expiry>/<sig>/<sha256>.
_BLOB_PATH = re.compile(r"/emulator/blobs/([0-9a-fA-F-]{36})/(original|resized|thumbnail)/([^/]+)/([^/]+)/([0-9a-f]{64})$")
_MODEL_PATH = re.compile(r"/emulator/models/([^/]+)$")
# The service's relative artifact path: i-<project hex>/i-<image hex> (image) or t-<image hex> (thumbnail).
_SERVICE_PATH = re.compile(r"^/?i-([0-9a-f]{32})/([it])-([0-9a-f]{32})$")
_SIDES = {"resized": 1024, "thumbnail": 200}


# -- exports ----------------------------------------------------------------------------------------
def _export_view(request: web.Request, export: dict) -> dict:
    """An Export; ``downloadUri`` is signed and expires like image URIs (the service's: a SAS
    link of about 24 h, issued afresh with every GetExports)."""
    out = dict(export)
    if out["downloadUri"] is not None:
        name = out["downloadUri"]
        out["downloadUri"] = f"{storage_url(request)}/emulator/models/{name}?{_st(request).signer.query(_model(name))}"
    return out


def _model(name: str) -> str:
    """The signed resource of an exported package."""
    return f"models/{name}"


def _start_export(st: EmulatorState, iteration: dict, platform: str, flavor: str) -> None:
    key = (iteration["id"], platform, flavor)
    st.exports_running.add(key)
    st.background.start_soon(_export_job, st, iteration, platform, flavor)


async def _export_job(st: EmulatorState, iteration: dict, platform: str, flavor: str) -> None:
    started = time.monotonic()
    iid = iteration["id"]
    name = export_file_name(iid, platform, flavor)
    manifest = {
        "producer": "cvbulk emulator", "platform": platform, "flavor": flavor or None,
        "projectId": iteration["project_id"], "iterationId": iid, "iterationName": iteration["name"],
        "kind": iteration["kind"], "modelFormat": "cvbulk-trainer/1", "exportedAt": utcnow(),
        "tags": [{"id": t["id"], "name": t["name"], "type": t["type"]} for t in iteration["tags"]],
    }
    try:
        await run(write_export, st.data_dir / "models" / f"{iid}.json", st.data_dir / MODEL_EXPORTS_DIR / name,
                  manifest)
        status, file = "Done", name
    except Exception:  # a failed export is a state of the export (Failed), not a crash
        log.exception("export of iteration %s to %s failed", iid, platform)
        status, file = "Failed", None
    try:
        await anyio.sleep(max(0.0, EXPORT_SECONDS - (time.monotonic() - started)))
        await run(st.store.finish_export, iid, platform, flavor, status, file)
    finally:
        st.exports_running.discard((iid, platform, flavor))


async def export_iteration(request: web.Request) -> web.Response:
    st = _st(request)
    pid, iid = _pid(request), request.match_info["iterationId"]
    platform = q_str(request, "platform", required=True) or ""
    flavor = q_str(request, "flavor") or ""
    export = await run(st.store.begin_export, pid, iid, platform, flavor)
    iteration = await run(st.store.trained_iteration, pid, iid)
    _start_export(st, iteration, platform, flavor)
    return json_response(_export_view(request, export))


async def get_exports(request: web.Request) -> web.Response:
    st = _st(request)
    pid, iid = _pid(request), request.match_info["iterationId"]
    exports = await run(st.store.list_exports, pid, iid)
    for export in exports:
        key = (str(uuid.UUID(iid)), export["platform"], export["flavor"] or "")
        if export["status"] == "Exporting" and key not in st.exports_running:
            # a stop interrupted it (jobs live in this process): build it again
            _start_export(st, await run(st.store.trained_iteration, pid, iid), key[1], key[2])
    return json_response([_export_view(request, e) for e in exports])


async def download_export(request: web.Request) -> web.StreamResponse:
    """GET /emulator/models/{name}?se=..&sig=..: an exported package, while its signed link is
    valid (else Azure Storage's 403, as for image URIs)."""
    st: EmulatorState = _st(request)
    name = request.match_info["name"]
    refused = st.signer.refusal(_model(name), request.query.get("se"), request.query.get("sig"))
    if refused:
        return storage_refusal(refused)
    if not _FILE.match(name) or not await run(st.store.export_done, name):
        raise web.HTTPNotFound()
    return await _file_response(request, st, name)


async def _file_response(request: web.Request, st: EmulatorState, name: str) -> web.Response:
    path = st.data_dir / MODEL_EXPORTS_DIR / name
    try:
        data = await run(path.read_bytes)
    except OSError:
        raise web.HTTPNotFound() from None
    return web.Response(body=data, content_type="application/octet-stream")


# -- artifacts --------------------------------------------------------------------------------------
def _blob_variant(st: EmulatorState, sha: str, variant: str) -> bytes:
    data = st.blobs.get(sha)
    if variant in _SIDES:
        data, _ = resized_copy(data, _SIDES[variant])
    return data


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "No file of this project has that path")


def _same_project(a: str, b: str) -> bool:
    return a.lower().replace("-", "") == b.lower().replace("-", "")


async def get_artifact(request: web.Request) -> web.Response:
    """A file of the project by the path (or absolute URI) the API gave for it: an image's
    original / resized / thumbnail URI, a stored prediction's image, an exported package, or the
    service's relative form ``i-<project>/i-<image>``. Answered as bytes (application/octet-stream).

    The Training-Key authorises the read (the service takes the bare relative path too), so an
    absolute URI past its expiry still names its file; but its signature must be the one the
    emulator gave for that file: an altered URI is not a path the API gave (404)."""
    st = _st(request)
    pid = _pid(request)
    raw = q_str(request, "path", required=True) or ""
    parts = urlsplit(raw) if "://" in raw else urlsplit(raw.split("?", 1)[0])
    path = unquote(parts.path)
    if not path.startswith("/"):
        path = "/" + path
    if (m := _BLOB_PATH.search(path)) is not None:
        owner, variant, expiry, sig, sha = m.groups()
        if not _same_project(owner, pid) or not st.signer.authentic(f"blobs/{owner}/{sha}", expiry, sig):
            raise _not_found()
        if not await run(st.store.owns_blob, pid, sha):
            raise _not_found()
    elif (m := _SERVICE_PATH.match(path)) is not None:
        if not _same_project(m.group(1), pid):
            raise _not_found()
        image_id = str(uuid.UUID(m.group(3)))
        sha = (await run(st.store.image_blobs, pid, [image_id]))[0][1]
        variant = "thumbnail" if m.group(2) == "t" else "original"
    elif (m := _MODEL_PATH.search(path)) is not None:
        name = m.group(1)
        query = parse_qs(parts.query)
        expiry, sig = (query.get("se") or [""])[0], (query.get("sig") or [""])[0]
        if not _FILE.match(name) or not st.signer.authentic(_model(name), expiry, sig):
            raise _not_found()
        if not await run(st.store.owns_export, pid, name):
            raise _not_found()
        return await _file_response(request, st, name)
    else:
        raise ApiError(400, "BadRequestInvalidArtifactUri", "The artifact path is not one this service gave")
    try:
        data = await run(_blob_variant, st, sha, variant, limiter=st.cpu)
    except OSError:
        raise ApiError(404, "NotFound", "The file is no longer stored") from None
    return web.Response(body=data, content_type="application/octet-stream")


def export_routes() -> list[tuple[str, str, Handler, str]]:
    """(method, path under the training prefix, handler, operationId)."""
    p = "/projects/{projectId}"
    return [
        ("GET", p + "/artifacts", get_artifact, "GetArtifact"),
        ("GET", p + "/iterations/{iterationId}/export", get_exports, "GetExports"),
        ("POST", p + "/iterations/{iterationId}/export", export_iteration, "ExportIteration"),
    ]
