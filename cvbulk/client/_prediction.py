"""PredictionClient: classify and detect, by image and by URL, with and without storage (Prediction v3.0)."""

from __future__ import annotations

from functools import lru_cache

from ._base import BaseClient
from ._http import query, seg
from ._models import ImagePrediction
from ._multipart import ImageData
from ._tiers import ApiGroup

__all__ = ["PredictionClient"]


class PredictionClient(BaseClient):
    """Async client of Custom Vision Prediction (``{endpoint}/customvision/v3.0/prediction``).

    ``store=False`` (the default) uses the ``/nostore`` operations: nothing is kept on the service, and the
    rate limit is the higher one. Image bytes are sent as one multipart ``imageData`` part. ``application``
    tags stored predictions with an application id.
    """

    _service = "prediction"
    _key_header = "Prediction-Key"
    _default_api_version = "v3.0"

    async def _predict(
        self,
        kind: str,
        project_id: str,
        published_name: str,
        *,
        image: ImageData | None,
        url: str | None,
        store: bool,
        application: str | None,
        name: str,
    ) -> ImagePrediction:
        source = "image" if image is not None else "url"
        path, operation = _route(kind, project_id, published_name, source, store)
        body = await self._http.call(
            operation, "POST", path,
            group=ApiGroup.PREDICTION_STORE if store else ApiGroup.PREDICTION_NOSTORE,
            params=query(application=application) if application is not None else None,
            images=[(name, image)] if image is not None else None,
            json_body={"url": url} if url is not None else None,
        )
        return ImagePrediction.from_json(body)

    async def classify_image(
        self, project_id: str, published_name: str, image: ImageData, *, store: bool = False,
        application: str | None = None, name: str = "image",
    ) -> ImagePrediction:
        """Classify an image (bytes, or an ``ImageBody`` such as ``FileBody(path, size)`` to stream it from disk) with
        a published iteration (ClassifyImage[WithNoStore]); ``name``: its multipart file name."""
        return await self._predict("classify", project_id, published_name, image=image, url=None,
                                   store=store, application=application, name=name)

    async def classify_image_url(
        self, project_id: str, published_name: str, url: str, *, store: bool = False,
        application: str | None = None,
    ) -> ImagePrediction:
        """Classify the image at ``url`` with a published iteration (ClassifyImageUrl[WithNoStore])."""
        return await self._predict("classify", project_id, published_name, image=None, url=url,
                                   store=store, application=application, name="")

    async def detect_image(
        self, project_id: str, published_name: str, image: ImageData, *, store: bool = False,
        application: str | None = None, name: str = "image",
    ) -> ImagePrediction:
        """Detect objects in an image (bytes, or an ``ImageBody`` such as ``FileBody(path, size)`` to stream it from disk) with
        a published iteration (DetectImage[WithNoStore]); ``name``: its multipart file name."""
        return await self._predict("detect", project_id, published_name, image=image, url=None,
                                   store=store, application=application, name=name)

    async def detect_image_url(
        self, project_id: str, published_name: str, url: str, *, store: bool = False,
        application: str | None = None,
    ) -> ImagePrediction:
        """Detect objects in the image at ``url`` with a published iteration (DetectImageUrl[WithNoStore])."""
        return await self._predict("detect", project_id, published_name, image=None, url=url,
                                   store=store, application=application, name="")


@lru_cache(maxsize=64)
def _route(kind: str, project_id: str, published_name: str, source: str, store: bool) -> tuple[str, str]:
    """(path, operation name) of a prediction: the same few for a whole run, so quoted once."""
    path = f"/{seg(project_id)}/{kind}/iterations/{seg(published_name)}/{source}"
    operation = ("Classify" if kind == "classify" else "Detect") + ("Image" if source == "image" else "ImageUrl")
    if not store:
        path += "/nostore"
        operation += "WithNoStore"
    return path, operation
