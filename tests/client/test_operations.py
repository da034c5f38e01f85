"""The operations a migration needs that came later: metadata, region and prediction deletion, images from
predictions, iteration exports (each as the spec writes it)."""

from __future__ import annotations

import pytest

from cvbulk.client import Export, ImageIdCreateEntry, ImageMetadataUpdateSummary, Region

from ._support import KEY
from ._support import TRAINING_BASE as B

P = "64b822c5-8082-4b36-a426-27225f4aa18c"
IT = "fe1e83c4-6f50-4899-9544-6bb08cf0e15a"
I1 = "4d6eb844-42ee-42bc-bd6f-c32455ef07c9"


async def test_update_image_metadata_as_the_spec_example(training, mock):
    answer = {"isBatchSuccessful": False, "images": [
        {"imageId": I1, "status": "OK", "metadata": {"tag": "value"}},
        {"imageId": "i2", "status": "ErrorLimitExceed"}]}
    mock.add("POST", f"{B}/projects/{P}/images/metadata", status=207, payload=answer)
    summary = await training.update_image_metadata(P, [I1, "i2"], {"tag": "value"})
    sent = mock.last
    assert sent.query == {"imageIds": f"{I1},i2"} and sent.json == {"tag": "value"}
    assert sent.headers["Training-Key"] == KEY and sent.headers["Content-Type"] == "application/json"
    assert isinstance(summary, ImageMetadataUpdateSummary) and not summary.is_batch_successful
    first, second = summary.images
    assert first.ok and first.metadata == {"tag": "value"} and not second.ok and second.status == "ErrorLimitExceed"
    assert summary.to_json() == answer


async def test_update_image_metadata_needs_images(training):
    with pytest.raises(ValueError):
        await training.update_image_metadata(P, [], {"a": "b"})


async def test_delete_image_regions(training, mock):
    mock.add("DELETE", f"{B}/projects/{P}/images/regions", status=204)
    assert await training.delete_image_regions(P, ["r1", "r2"]) is None
    assert mock.last.query == {"regionIds": "r1,r2"}
    with pytest.raises(ValueError):
        await training.delete_image_regions(P, [])


async def test_delete_prediction(training, mock):
    mock.add("DELETE", f"{B}/projects/{P}/predictions", status=204)
    await training.delete_prediction(P, ["x1", "x2"])
    assert mock.last.query == {"ids": "x1,x2"}


async def test_create_images_from_predictions(training, mock):
    answer = {"isBatchSuccessful": True, "images": [
        {"sourceUrl": "https://x/y", "status": "OK", "image": {"id": I1, "created": "2020-01-01T00:00:00Z"}}]}
    mock.add("POST", f"{B}/projects/{P}/images/predictions", payload=answer)
    entries = [ImageIdCreateEntry(I1, tag_ids=["t1"], regions=[Region("t1", 0.1, 0.2, 0.3, 0.4)])]
    summary = await training.create_images_from_predictions(P, entries, metadata={"k": "v"})
    assert mock.last.json == {
        "images": [{"id": I1, "tagIds": ["t1"],
                    "regions": [{"tagId": "t1", "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}]}],
        "metadata": {"k": "v"}}
    assert summary.images[0].image.id == I1


async def test_export_iteration_and_get_exports(training, mock):
    mock.add("POST", f"{B}/projects/{P}/iterations/{IT}/export",
             payload={"platform": "ONNX", "status": "Exporting", "newerVersionAvailable": False})
    mock.add("GET", f"{B}/projects/{P}/iterations/{IT}/export",
             payload=[{"platform": "ONNX", "status": "Done", "downloadUri": "https://blob/x.zip?sig=s",
                       "flavor": None, "newerVersionAvailable": False}])
    started = await training.export_iteration(P, IT, "ONNX", flavor="ONNX12")
    assert mock.calls[0].query == {"platform": "ONNX", "flavor": "ONNX12"}
    assert started == Export(platform="ONNX", status="Exporting")
    (done,) = await training.get_exports(P, IT)
    assert done.status == "Done" and done.download_uri == "https://blob/x.zip?sig=s"
