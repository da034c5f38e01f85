"""Prediction API handlers: /customvision/{v3.0|v3.1}/prediction/{projectId}/{classify|detect}/..."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from aiohttp import web

from ._errors import ApiError
from ._http import IMAGES, REQUEST_ID, json_response, q_str, read_images, read_json
from ._imaging import PREDICTION_MAX_BYTES
from ._ingest import fetch_url
from ._predict import predict_image
from ._state import STATE

__all__ = ["PREDICTION_PREFIX", "prediction_routes"]

PREDICTION_PREFIX = r"/customvision/{version:v3\.[01]}/{api:[Pp]rediction}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _handler(kind: str, source: str, stores: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        st = request.app[STATE]
        pid = request.match_info["projectId"]
        name = request.match_info["publishedName"]
        if source == "image":
            data = (await read_images(request, limit=1))[0][1]
        else:
            body = await read_json(request)
            url = body.get("url") if isinstance(body, dict) else None
            if not url:
                raise ApiError(400, "BadRequestImageUrl", "The body needs a url")
            got = await fetch_url(st.http, url, PREDICTION_MAX_BYTES) if st.http else "ErrorSource"
            if isinstance(got, str):
                raise ApiError(400, "BadRequestImageUrl", "The image URL could not be read")
            data = got
        request[IMAGES] = 1
        iteration = await anyio.to_thread.run_sync(st.store.published, pid, name)
        wants_detection = kind == "detect"
        if (iteration["kind"] == "ObjectDetection") != wants_detection:
            raise ApiError(400, "BadRequestInvalidPublishTarget",
                           f"The published iteration cannot {kind}: use the "
                           f"{'detect' if not wants_detection else 'classify'} operations")
        application = q_str(request, "application")
        if application is not None and (len(application) > 256 or not application.strip()):
            raise ApiError(400, "BadRequestPredictionInvalidApplicationName", "Invalid application name")
        result = await predict_image(st, pid, iteration, data, with_tag_type=True, store=stores,
                                     application=application, request_id=request.get(REQUEST_ID))
        return json_response(result)

    return handler


def prediction_routes() -> list[tuple[str, str, Handler, str, bool]]:
    """(method, path, handler, operationId, stores the image) for all eight operations."""
    out = []
    for kind, op in (("classify", "Classify"), ("detect", "Detect")):
        base = "/{projectId}/" + kind + "/iterations/{publishedName}"
        for source, suffix in (("image", "Image"), ("url", "ImageUrl")):
            out.append(("POST", f"{base}/{source}", _handler(kind, source, True), f"{op}{suffix}", True))
            out.append(("POST", f"{base}/{source}/nostore", _handler(kind, source, False),
                        f"{op}{suffix}WithNoStore", False))
    return out
