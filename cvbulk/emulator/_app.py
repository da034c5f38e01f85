"""The aiohttp applications: the API (routing, authentication, faults, rate limits, latency, errors) and
the storage listener that serves what the service keeps in its storage account (image bytes, project
export tokens, exported models) on an origin of its own, by signed links and without a key."""

from __future__ import annotations

import hmac
import logging
import uuid

import anyio
from aiohttp import web

from ._errors import ApiError
from ._http import IMAGES, REQUEST_ID, json_response
from ._imaging import content_type, resized_copy
from ._limits import throttled_body
from ._routes_exports import download_export
from ._routes_ops import ops_routes
from ._routes_prediction import PREDICTION_PREFIX, prediction_routes
from ._routes_training import TRAINING_PREFIX, training_routes
from ._signing import storage_error, storage_refusal
from ._state import STATE, EmulatorState

__all__ = ["build_app", "build_storage_app"]

log = logging.getLogger("cvbulk.emulator")

_UNAUTHORIZED = {
    "error": {
        "code": "401",
        "message": (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
            "valid key for an active subscription and use a correct regional API endpoint for your resource."
        ),
    }
}
# Headers the service puts on every answer (seen in every recorded session).
_SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
    "X-Content-Type-Options": "nosniff",
}


# API resources carry ``cv_info``: method -> (api, operationId, rate group).
def _route_info(request: web.Request) -> tuple[str, str, str] | None:
    route = request.match_info.route
    info = getattr(route.resource, "cv_info", None) if route.resource is not None else None
    if info is None:
        return None
    return info.get(route.method)


@web.middleware
async def _headers(request: web.Request, handler):
    """apim-request-id and an identical Request-Id on every answer, the service's security
    headers, and no Content-Type on a 204 (as the service)."""
    request_id = str(uuid.uuid4())
    request[REQUEST_ID] = request_id
    response = await handler(request)
    response.headers["apim-request-id"] = request_id
    response.headers["Request-Id"] = request_id
    response.headers.update(_SECURITY_HEADERS)
    if response.status == 204 and isinstance(response, web.Response):
        response.body = None
        response.headers.pop("Content-Type", None)
    return response


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), status=exc.status)
    except web.HTTPNotFound:
        return json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
    except web.HTTPMethodNotAllowed:
        return json_response({"code": "BadRequestNotSupported", "message": "Method not allowed"}, status=405)
    except web.HTTPRequestEntityTooLarge:
        return json_response({"code": "BadRequestImageBatch", "message": "The request is too large"}, status=413)
    except web.HTTPException:
        raise
    except (ConnectionError, anyio.EndOfStream):
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return json_response({"code": "ErrorUnknown", "message": "An unexpected error occurred"}, status=500)


@web.middleware
async def _api(request: web.Request, handler):
    info = _route_info(request)
    if info is None:  # blobs, exports: open like the service's SAS URLs
        return await handler(request)
    api, operation, group = info
    st: EmulatorState = request.app[STATE]
    header, expected = (
        ("Training-Key", st.config.training_key) if api == "Training" else ("Prediction-Key", st.config.prediction_key)
    )
    given = request.headers.get(header, "")  # CIMultiDict: the name matches in any case
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return json_response(_UNAUTHORIZED, status=401)

    faults = st.faults
    drop = bool(faults.drop_rate) and st.rng.random() < faults.drop_rate
    drop_after = drop and st.rng.random() < faults.drop_after_work
    if drop and not drop_after:
        return _drop(request)
    if st.throttle_left > 0:
        st.throttle_left -= 1
        return _throttled(st, operation, api, 1)
    if faults.error_rate and st.rng.random() < faults.error_rate:
        status = st.rng.choice((500, 503))
        code = "ErrorPredictionServiceUnavailable" if status == 503 and api == "Prediction" else "ErrorUnknown"
        return json_response({"code": code, "message": "Injected failure (emulator faults)"}, status=status)
    wait = st.rates.check(group)
    if wait:
        return _throttled(st, operation, api, wait)

    try:
        response = await handler(request)
    except ApiError as exc:  # answered here so that drops and latency apply to errors too
        response = json_response(exc.body(), status=exc.status)
    if drop_after:
        return _drop(request)
    latency = st.latency
    delay = latency.per_request + latency.per_image * request.get(IMAGES, 0)
    if latency.per_mb and request.content_length:
        delay += latency.per_mb * request.content_length / (1024 * 1024)
    if delay > 0:
        await anyio.sleep(delay)  # the handler waits; the event loop keeps serving others
    return response


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()  # no answer at all, like a reset connection
    return web.Response(status=503)  # aiohttp finds the transport gone and writes nothing of this


def _throttled(st: EmulatorState, operation: str, api: str, seconds: int) -> web.Response:
    headers = {"Retry-After": str(seconds)} if st.config.retry_after else None
    return json_response(throttled_body(operation, api, st.rates.tier, seconds), status=429, headers=headers)


def _signed(request: web.Request, resource: str, expiry: str | None = None,
            sig: str | None = None) -> web.Response | None:
    """None when the URL's signature and expiry (in its query unless given) are good, else Azure
    Storage's 403."""
    st: EmulatorState = request.app[STATE]
    if expiry is None:
        expiry, sig = request.query.get("se"), request.query.get("sig")
    detail = st.signer.refusal(resource, expiry, sig)
    return storage_refusal(detail) if detail else None


async def _blob(request: web.Request) -> web.StreamResponse:
    st: EmulatorState = request.app[STATE]
    pid, sha, variant = request.match_info["pid"], request.match_info["sha"], request.match_info["variant"]
    if variant not in ("original", "resized", "thumbnail"):
        raise web.HTTPNotFound()
    refused = _signed(request, f"blobs/{pid}/{sha}", request.match_info["se"], request.match_info["sig"])
    if refused is not None:
        return refused
    try:
        data = await anyio.to_thread.run_sync(st.blobs.get, sha)
    except (FileNotFoundError, OSError):
        raise web.HTTPNotFound() from None
    if variant == "original":
        from ._imaging import inspect_image

        info = inspect_image(data, max_bytes=len(data) + 1)
        ctype = content_type(info.format) if not isinstance(info, str) else "application/octet-stream"
    else:
        side = 1024 if variant == "resized" else 200
        data, ctype = await anyio.to_thread.run_sync(resized_copy, data, side, limiter=st.cpu)
    return web.Response(body=data, content_type=ctype, headers={"Cache-Control": "max-age=86400"})


async def _export(request: web.Request) -> web.StreamResponse:
    from ._transfer import serve_export

    token_id = request.match_info["token"]
    refused = _signed(request, f"exports/{token_id}")
    if refused is not None:
        return refused
    return await serve_export(request, token_id)


def _add_storage_routes(app: web.Application) -> None:
    app.router.add_get("/emulator/blobs/{pid}/{variant}/{se}/{sig}/{sha}", _blob)
    app.router.add_get("/emulator/exports/{token}", _export)
    app.router.add_get("/emulator/models/{name}", download_export)


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[_headers, _errors, _api], client_max_size=state.config.max_body_bytes)
    app[STATE] = state
    groups: dict[str, dict] = {}

    def add(prefix: str, method: str, path: str, handler, info: tuple[str, str, str]) -> None:
        # The official .NET SDK sends ``//customvision/...``, which the service accepts.
        for lead in ("", "/"):
            resource = app.router.add_resource(lead + prefix + path)
            resource.add_route(method, handler)
            # One (api, operation, rate group) map per path, whether aiohttp reuses the resource or not.
            key = lead + prefix + path
            groups.setdefault(key, {})[method] = info
            resource.cv_info = groups[key]  # type: ignore[attr-defined]

    for method, path, handler, operation in training_routes():
        group = "train_project" if operation == "TrainProject" else "training"
        add(TRAINING_PREFIX, method, path, handler, ("Training", operation, group))
    for method, path, handler, operation, stores in prediction_routes():
        add(PREDICTION_PREFIX, method, path, handler,
            ("Prediction", operation, "prediction_store" if stores else "prediction_nostore"))
    # Added last: aiohttp tries these resources one by one, so classify and upload never pass them.
    for method, path, handler, operation in ops_routes():
        add(TRAINING_PREFIX, method, path, handler, ("Training", operation, "training"))
    # Links are issued on the storage listener; the endpoint still answers links that earlier versions
    # issued on it (and URIs a client made relative to it).
    _add_storage_routes(app)
    return app


@web.middleware
async def _storage(request: web.Request, handler):
    """Answers as Azure Blob storage gives them: an ``x-ms-request-id``, errors in its XML."""
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        found = request.match_info.route.resource is not None
        response = (storage_error(404, "BlobNotFound", "The specified blob does not exist.") if found
                    else storage_error(404, "ResourceNotFound", "The specified resource does not exist."))
    except web.HTTPMethodNotAllowed:
        response = storage_error(405, "UnsupportedHttpVerb",
                                 "The resource doesn't support specified Http Verb.")
    except web.HTTPException:
        raise
    except (ConnectionError, anyio.EndOfStream):
        raise
    except Exception:
        log.exception("unexpected error in storage %s %s", request.method, request.path)
        response = storage_error(500, "InternalError", "The server encountered an internal error.")
    response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
    latency = request.app[STATE].latency.per_download
    if latency > 0:
        await anyio.sleep(latency)  # storage's own latency (another host than the endpoint's)
    return response


def build_storage_app(state: EmulatorState) -> web.Application:
    """The storage listener: only signed links, no key, no rate limit (another service than the API)."""
    app = web.Application(middlewares=[_storage])
    app[STATE] = state
    _add_storage_routes(app)
    return app
