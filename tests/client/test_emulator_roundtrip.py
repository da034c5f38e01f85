"""The client against the real emulator (tests/conftest.py's ``emulator``): the whole train-and-predict path."""

from __future__ import annotations

import io

import anyio
import pytest
from PIL import Image as PILImage

from cvbulk.client import (
    AuthenticationError,
    ImageFileCreateEntry,
    NotFoundError,
    PredictionClient,
    Region,
    RetryPolicy,
    TrainingClient,
)


def png(color: tuple[int, int, int], size: tuple[int, int] = (256, 256)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


async def test_upload_train_publish_predict(emulator, training_client):
    t = training_client
    project = await t.create_project("client-roundtrip", classification_type="Multiclass")
    red, blue = await t.create_tag(project.id, "red"), await t.create_tag(project.id, "blue")
    summary = await t.create_images_from_data(
        project.id, [(f"r{i}.png", png((200 + i, 10, 10))) for i in range(5)], tag_ids=[red.id]
    )
    assert summary.is_batch_successful and [r.source_name for r in summary.images] == [f"r{i}.png" for i in range(5)]
    mixed = await t.create_images_from_data(
        project.id, [(f"b{i}.png", png((10, 10, 200 + i))) for i in range(5)] + [("bad.png", b"not an image")],
        tag_ids=[blue.id],
    )
    assert mixed.is_batch_successful is False
    assert {r.source_name: r.status for r in mixed.images}["bad.png"] == "ErrorImageFormat"
    again = await t.create_images_from_data(project.id, [("r0-again.png", png((200, 10, 10)))], tag_ids=[red.id])
    assert again.images[0].status == "OKDuplicate"

    assert await t.get_tagged_image_count(project.id) == 10
    images = [image async for image in t.iter_images(project.id, page_size=4)]
    assert len(images) == 10 and len({i.id for i in images}) == 10
    assert (await t.download(images[0].original_image_uri))[:4] == b"\x89PNG"

    iteration = await t.train_project(project.id)
    with anyio.fail_after(30):
        while (iteration := await t.get_iteration(project.id, iteration.id)).status in ("Training", "Queued"):
            await anyio.sleep(0.05)
    assert iteration.status == "Completed"
    assert await t.publish_iteration(project.id, iteration.id, "model", emulator.prediction_resource_id)

    async with PredictionClient(emulator.endpoint, emulator.prediction_key) as prediction:
        result = await prediction.classify_image(project.id, "model", png((210, 10, 10)))
        assert result.predictions[0].tag_id == red.id
        with pytest.raises(NotFoundError):
            await prediction.classify_image(project.id, "no-such-model", png((1, 2, 3)))


async def test_files_with_regions_errors_and_auth(emulator, training_client):
    t = training_client
    domains = await t.get_domains()
    detection = next(d for d in domains if d.type == "ObjectDetection")
    project = await t.create_project("client-od", domain_id=detection.id)
    fork = await t.create_tag(project.id, "fork")
    entries = [ImageFileCreateEntry(f"f{i}.png", png((i * 40, 100, 100)), regions=[Region(fork.id, 0.1, 0.1, 0.5, 0.5)])
               for i in range(3)]
    summary = await t.create_images_from_files(project.id, entries)
    assert summary.is_batch_successful
    assert all(r.image.regions and r.image.regions[0].tag_id == fork.id for r in summary.images)
    with pytest.raises(NotFoundError) as info:
        await t.get_project("00000000-0000-0000-0000-000000000000")
    assert info.value.code == "NotFoundProject" and info.value.status == 404
    wrong_key = "not-the-right-key-0123456789"
    async with TrainingClient(emulator.endpoint, wrong_key, retry=RetryPolicy(max_attempts=3)) as intruder:
        with pytest.raises(AuthenticationError) as denied:
            await intruder.get_projects()
    assert intruder.stats.requests == 1 and wrong_key not in repr(denied.value)
