"""Scoring one image with an iteration's model (features computed in a worker thread)."""

from __future__ import annotations

import hashlib

import anyio

from ._errors import ApiError
from ._imaging import PREDICTION_MAX_BYTES, ImageInfo, inspect_image
from ._scoring import predictions_json
from ._state import EmulatorState
from ._store import new_id, utcnow

__all__ = ["predict_image"]


async def predict_image(st: EmulatorState, project_id: str, iteration: dict, data: bytes, *,
                        with_tag_type: bool = True, store: bool = False, application: str | None = None,
                        request_id: str | None = None, max_bytes: int = PREDICTION_MAX_BYTES) -> dict:
    """An ImagePrediction for ``data`` from the iteration (``id``, ``kind``, ``tags`` snapshot);
    with ``store`` the image and the result are kept, for QueryPredictions. Its ``id`` is the
    request's id (the service's apim-request-id), as on the service."""
    if len(data) > max_bytes:
        raise ApiError(400, "BadRequestImageSizeBytes", f"The image is larger than {max_bytes // (1024 * 1024)} MB")
    info = inspect_image(data, max_bytes=max_bytes)
    if not isinstance(info, ImageInfo):
        code = "BadRequestImageSizeBytes" if info == "ErrorImageSize" else "BadRequestImageFormat"
        raise ApiError(400, code, "The image is not a JPEG, PNG, BMP or GIF within the size limits")
    try:
        model = await st.models.get(iteration["id"])
    except FileNotFoundError:
        raise ApiError(503, "ErrorPredictionModelNotFound", "The iteration's model is not available") from None
    scored = await anyio.to_thread.run_sync(model.predict, data, limiter=st.cpu)
    predictions = predictions_json(scored, iteration["tags"], with_tag_type=with_tag_type)
    result = {"id": request_id or new_id(), "project": project_id, "iteration": iteration["id"], "created": utcnow(),
              "predictions": predictions}
    if store:
        def keep() -> None:
            digest = hashlib.sha256(data).hexdigest()
            st.blobs.put_known(digest, data)
            st.store.save_prediction(result, digest, application)

        await anyio.to_thread.run_sync(keep)
    return result
