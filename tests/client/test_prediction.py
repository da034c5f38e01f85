"""Prediction v3.0: classify / detect, by image / by URL, with and without storage."""

from __future__ import annotations

import pytest

from cvbulk.client import ApiGroup, BoundingBox, ImagePrediction, Pacer, PredictionClient

from ._support import ENDPOINT, KEY, PREDICTION_BASE as B

P = "64b822c5-8082-4b36-a426-27225f4aa18c"
ANSWER = {
    "id": "64615ba1-b53f-e911-b05b-f8633f7a2ef1", "project": P, "iteration": "45c79472", "created":
    "2019-03-10T06:10:28Z", "predictions": [
        {"tagId": "7e703b80", "tagName": "Tag 1", "probability": 0.05149666,
         "boundingBox": {"left": 0.955476165, "top": 0, "width": 0.0412225723, "height": 0.156851858}},
        {"tagId": "a0d06a54", "tagName": "Tag 2", "probability": 0.000193528482},
    ],
}


@pytest.mark.parametrize("kind", ["classify", "detect"])
@pytest.mark.parametrize("store", [False, True])
@pytest.mark.parametrize("source", ["image", "url"])
async def test_prediction_operations(prediction, mock, kind, store, source):
    path = f"{B}/{P}/{kind}/iterations/My%20Model/{source}" + ("" if store else "/nostore")
    mock.add("POST", path, payload=ANSWER)
    method = getattr(prediction, f"{kind}_image" + ("_url" if source == "url" else ""))
    arg = b"\xff\xd8jpeg" if source == "image" else "https://example.org/a.jpg"
    result = await method(P, "My Model", arg, store=store, application="nightly")
    call = mock.last
    assert call.method == "POST" and call.url.raw_path == path
    assert call.query == {"application": "nightly"}
    assert call.headers["Prediction-Key"] == KEY and "Training-Key" not in call.headers
    assert call.headers["Accept"] == "application/json"
    if source == "image":
        assert [(p["name"], p["content_type"], p["body"]) for p in call.parts] == [
            ("imageData", "application/octet-stream", b"\xff\xd8jpeg")]
    else:
        assert call.json == {"url": "https://example.org/a.jpg"}
    assert isinstance(result, ImagePrediction)
    assert result.predictions[0].bounding_box == BoundingBox(0.955476165, 0, 0.0412225723, 0.156851858)
    assert result.predictions[1].bounding_box is None
    assert result.predictions[0].probability == pytest.approx(0.05149666)


async def test_default_is_nostore_without_application(prediction, mock):
    mock.add("POST", f"{B}/{P}/classify/iterations/m/image/nostore", payload=ANSWER)
    await prediction.classify_image(P, "m", b"x")
    assert mock.last.query == {}


async def test_store_and_nostore_use_their_own_api_group(mock):
    pacer = Pacer.for_tier("S0")
    used = []
    real_enter = pacer.enter

    async def spy(group):
        used.append(group)
        await real_enter(group)

    pacer.enter = spy  # type: ignore[method-assign]
    mock.add("POST", f"{B}/{P}/detect/iterations/m/image", payload=ANSWER)
    mock.add("POST", f"{B}/{P}/detect/iterations/m/image/nostore", payload=ANSWER)
    async with PredictionClient(ENDPOINT, KEY, pacer=pacer) as client:
        await client.detect_image(P, "m", b"x", store=True)
        await client.detect_image(P, "m", b"x")
    assert used == [ApiGroup.PREDICTION_STORE, ApiGroup.PREDICTION_NOSTORE]
