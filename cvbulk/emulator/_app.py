"""The aiohttp application: routing, authentication, faults, rate limits, latency, errors."""

from __future__ import annotations

import hmac
import logging

import anyio
from aiohttp import web

from ._errors import ApiError
from ._http import IMAGES, json_response
from ._imaging import content_type, resized_copy
from ._limits import throttled_body
from ._routes_exports import download_export
from ._routes_ops import ops_routes
from ._routes_prediction import PREDICTION_PREFIX, prediction_routes
from ._routes_training import TRAINING_PREFIX, training_routes
from ._state import STATE, EmulatorState

__all__ = ["build_app"]

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
_MAX_BODY = 512 * 1024 * 1024  # 64 images of 6 MB, with room for base64


# API resources carry ``cv_info``: method -> (api, operationId, rate group).
def _route_info(request: web.Request) -> tuple[str, str, str] | None:
    route = request.match_info.route
    info = getattr(route.resource, "cv_info", None) if route.resource is not None else None
    if info is None:
        return None
    return info.get(route.method)


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


async def _blob(request: web.Request) -> web.StreamResponse:
    st: EmulatorState = request.app[STATE]
    sha = request.match_info["sha"]
    variant = request.match_info.get("variant", "original")
    if variant not in ("original", "resized", "thumbnail"):
        raise web.HTTPNotFound()
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
    st: EmulatorState = request.app[STATE]
    token_id = request.match_info["token"]
    path = st.data_dir / "exports" / f"{token_id}.json"
    if not token_id.isalnum() or not path.exists():
        raise web.HTTPNotFound()
    return web.Response(body=await anyio.to_thread.run_sync(path.read_bytes), content_type="application/json")


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[_errors, _api], client_max_size=_MAX_BODY)
    app[STATE] = state
    groups: dict[str, dict] = {}

    def add(prefix: str, method: str, path: str, handler, info: tuple[str, str, str]) -> None:
        resource = app.router.add_resource(prefix + path)
        resource.add_route(method, handler)
        # One (api, operation, rate group) map per path, whether aiohttp reuses the resource or not.
        key = prefix + path
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
    app.router.add_get("/emulator/blobs/{sha}", _blob)
    app.router.add_get("/emulator/blobs/{sha}/{variant}", _blob)
    app.router.add_get("/emulator/exports/{token}", _export)
    app.router.add_get("/emulator/models/{name}", download_export)
    return app
