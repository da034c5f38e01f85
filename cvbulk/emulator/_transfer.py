"""ExportProject / ImportProject: a project copied through a signed, expiring token URL.

The token is a URL of the exporting emulator's storage listener (``/emulator/exports/<id>?se=...&sig=...``),
as the service's token is a SAS URL of a blob: an emulator imports its own exports from disk and another
emulator's over HTTP. An import answers ``Importing`` at once and turns ``Succeeded`` once its
trained iterations are copied (retrained, in the background), as the service does.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid

import anyio
from aiohttp import web

from ._errors import ApiError
from ._http import json_response, storage_url
from ._state import EmulatorState

__all__ = ["export_project", "import_from_token", "serve_export"]


def _invalid(why: str) -> ApiError:
    return ApiError(400, "BadRequestInvalidImportToken", f"The import token is not valid: {why}")


async def export_project(request: web.Request, st: EmulatorState, project_id: str) -> web.Response:
    snap = await anyio.to_thread.run_sync(st.store.export_snapshot, project_id)
    token_id = uuid.uuid4().hex
    path = st.data_dir / "exports" / f"{token_id}.json"
    await anyio.to_thread.run_sync(path.write_text, json.dumps(snap))
    resource = f"exports/{token_id}"
    token = f"{storage_url(request)}/emulator/{resource}?{st.signer.query(resource)}"
    return json_response({
        "iterationCount": len(snap["iterations"]), "imageCount": len(snap["images"]),
        "tagCount": len(snap["tags"]), "regionCount": len(snap["regions"]),
        "estimatedImportTimeInMS": 100 + 2 * len(snap["images"]), "token": token,
    })


async def serve_export(request: web.Request, token_id: str) -> web.Response:
    """The snapshot of a (signature-checked) export, with signed URLs of its images."""
    from ._http import blob_uris
    from ._state import STATE

    st: EmulatorState = request.app[STATE]
    path = st.data_dir / "exports" / f"{token_id}.json"
    if not token_id.isalnum() or not path.exists():
        raise web.HTTPNotFound()
    snap = json.loads(await anyio.to_thread.run_sync(path.read_text))
    snap["blobUrls"] = {im["sha256"]: blob_uris(request, snap["projectId"], im["sha256"])["originalImageUri"]
                        for im in snap["images"]}
    return json_response(snap)


def _parse(token: str) -> tuple[str, str, str, str]:
    """(origin, token id, se, sig) of a token URL."""
    parts = urllib.parse.urlsplit(token)
    segments = parts.path.rstrip("/").split("/")
    if parts.scheme not in ("http", "https") or len(segments) < 2 or segments[-2] != "exports":
        raise _invalid("not an export URL")
    query = urllib.parse.parse_qs(parts.query)
    token_id = segments[-1]
    if not token_id.isalnum():
        raise _invalid("not an export URL")
    return (f"{parts.scheme}://{parts.netloc}", token_id, (query.get("se") or [""])[0],
            (query.get("sig") or [""])[0])


async def _fetch(st: EmulatorState, url: str) -> bytes:
    if st.http is None:
        raise _invalid("the exporting emulator cannot be reached")
    try:
        async with st.http.get(url) as resp:
            if resp.status != 200:
                raise _invalid(f"the export answered {resp.status}")
            return await resp.read()
    except OSError:
        raise _invalid("the exporting emulator cannot be reached") from None


async def import_from_token(st: EmulatorState, token: str, name: str | None) -> dict:
    _origin, token_id, expiry, sig = _parse(token)
    local = st.data_dir / "exports" / f"{token_id}.json"
    if local.exists():
        refused = st.signer.refusal(f"exports/{token_id}", expiry, sig)
        if refused:
            raise _invalid(refused)
        snap = json.loads(await anyio.to_thread.run_sync(local.read_text))
    else:  # exported by another emulator: fetch the snapshot and the image bytes from it
        snap = json.loads(await _fetch(st, token))
        for image in snap["images"]:
            if not st.blobs.exists(image["sha256"]):
                data = await _fetch(st, snap["blobUrls"][image["sha256"]])
                await anyio.to_thread.run_sync(st.blobs.put, data)
    project, jobs = await anyio.to_thread.run_sync(st.store.import_snapshot, snap, name)
    for job in jobs:
        st.start_training(job)
    st.background.start_soon(_finish_import, st, project["id"])
    return project


async def _finish_import(st: EmulatorState, project_id: str) -> None:
    """``Importing`` until the copied iterations are trained (and at least the training time)."""
    started = time.monotonic()
    while await anyio.to_thread.run_sync(st.store.iterations_training, project_id):
        await anyio.sleep(0.05)
    rest = st.config.training_seconds - (time.monotonic() - started)
    if rest > 0:
        await anyio.sleep(rest)
    await anyio.to_thread.run_sync(st.store.set_project_status, project_id, "Succeeded")
