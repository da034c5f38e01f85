"""Every public method of the official Python SDK 3.1.1 (training and prediction clients) works
against the emulator. The clients are wrapped in recorders, and the test ends by checking that
it called every public method the installed SDK has: a method added to the SDK cannot be
skipped silently."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageIdCreateBatch,
    ImageIdCreateEntry,
    ImageRegionCreateEntry,
    ImageTagCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
    PredictionQueryToken,
    Region,
    SuggestedTagAndRegionQueryToken,
)
from msrest.authentication import ApiKeyCredentials

from .conftest import SAMPLES

pytestmark = pytest.mark.timeout(240)

TREES = SAMPLES / "ImageClassification" / "Images"
COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"  # General (compact): exportable
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


class Recorder:
    """The client, with the name of every public method called recorded."""

    def __init__(self, client: object, called: set[str]) -> None:
        self._client = client
        self._called = called

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if callable(attr) and not name.startswith("_"):
            self._called.add(name)
        return attr


def _wait(trainer, project_id: str, iteration):
    deadline = time.monotonic() + 90
    while iteration.status != "Completed":
        assert iteration.status == "Training", iteration.status
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.05)  # a poll, as the quickstart does
        iteration = trainer.get_iteration(project_id, iteration.id)
    return iteration


def _files(folder: str) -> list[tuple[str, bytes]]:
    return [(f.name, f.read_bytes()) for f in sorted((TREES / folder).glob("*.jpg"))]


def _classification(trainer, predictor, emu) -> None:
    domains = trainer.get_domains()
    assert trainer.get_domain(COMPACT).name == next(d.name for d in domains if d.id == COMPACT)
    project = trainer.create_project(f"every method {uuid.uuid4()}", domain_id=COMPACT,
                                     classification_type="Multiclass")
    assert project.id in {p.id for p in trainer.get_projects()}
    project.description = "changed"
    assert trainer.update_project(project.id, project).description == "changed"
    assert trainer.get_project(project.id).description == "changed"
    pid = project.id

    hemlock = trainer.create_tag(pid, "Hemlock")
    cherry = trainer.create_tag(pid, "Cherry")
    spare = trainer.create_tag(pid, "Spare")
    # The service answers a tag without description with description null (recorded), and the
    # SDK's Tag model refuses to send a null description: an update sets one, on Azure as here.
    assert spare.description is None
    spare.name, spare.description = "Spare tag", "kept apart"
    assert trainer.update_tag(pid, spare.id, spare).name == "Spare tag"
    assert trainer.get_tag(pid, spare.id).name == "Spare tag"
    trainer.delete_tag(pid, spare.id)
    assert {t.name for t in trainer.get_tags(pid)} == {"Hemlock", "Cherry"}

    hemlocks, cherries = _files("Hemlock"), _files("Japanese_Cherry")
    for _name, data in hemlocks[:9]:
        assert trainer.create_images_from_data(pid, data, tag_ids=[hemlock.id]).is_batch_successful
    batch = ImageFileCreateBatch(images=[ImageFileCreateEntry(name=n, contents=d) for n, d in cherries[:5]],
                                 tag_ids=[cherry.id])
    assert trainer.create_images_from_files(pid, batch).is_batch_successful
    # the other cherries by URL: served by the emulator from a scratch project
    scratch = trainer.create_project(f"scratch {uuid.uuid4()}")
    staged = trainer.create_images_from_files(
        scratch.id, ImageFileCreateBatch(images=[ImageFileCreateEntry(name=n, contents=d) for n, d in cherries[5:9]]))
    urls = [ImageUrlCreateEntry(url=i.image.original_image_uri) for i in staged.images]
    assert trainer.create_images_from_urls(pid, ImageUrlCreateBatch(images=urls, tag_ids=[cherry.id])).is_batch_successful
    trainer.delete_project(scratch.id)
    untagged = trainer.create_images_from_data(pid, (TREES / "Test" / "test_image.jpg").read_bytes()).images[0].image

    assert trainer.get_image_count(pid) == 19
    assert trainer.get_tagged_image_count(pid) == 18 and trainer.get_untagged_image_count(pid) == 1
    assert len(trainer.get_images(pid, take=5)) == 5
    assert len(trainer.get_tagged_images(pid, tag_ids=[hemlock.id])) == 9
    assert [i.id for i in trainer.get_untagged_images(pid)] == [untagged.id]
    assert [i.id for i in trainer.get_images_by_ids(pid, image_ids=[untagged.id])] == [untagged.id]
    assert trainer.update_image_metadata(pid, [untagged.id], {"source": "test"}).is_batch_successful

    tagging = trainer.create_image_tags(pid, [ImageTagCreateEntry(image_id=untagged.id, tag_id=hemlock.id)])
    assert len(tagging.created) == 1
    trainer.delete_image_tags(pid, [untagged.id], [hemlock.id])
    assert trainer.get_untagged_image_count(pid) == 1

    iteration = _wait(trainer, pid, trainer.train_project(pid))
    assert [i.id for i in trainer.get_iterations(pid)] == [iteration.id]
    assert trainer.update_iteration(pid, iteration.id, "First").name == "First"
    performance = trainer.get_iteration_performance(pid, iteration.id)
    assert 0 <= performance.precision <= 1 and len(performance.per_tag_performance) == 2
    images = trainer.get_image_performances(pid, iteration.id)
    assert len(images) == trainer.get_image_performance_count(pid, iteration.id) > 0
    assert all(len(p.predictions) == 2 for p in images)

    suggested = trainer.suggest_tags_and_regions(pid, iteration.id, [untagged.id])
    assert max(suggested[0].predictions, key=lambda p: p.probability).tag_name == "Hemlock"
    query = SuggestedTagAndRegionQueryToken(tag_ids=[hemlock.id, cherry.id], threshold=0.0, max_count=10)
    assert [r.id for r in trainer.query_suggested_images(pid, iteration.id, query).results] == [untagged.id]
    counts = trainer.query_suggested_image_count(pid, iteration.id, tag_ids=[hemlock.id], threshold=0.0)
    assert counts == {hemlock.id: 1}
    proposals = trainer.get_image_region_proposals(pid, untagged.id)
    assert proposals.image_id == untagged.id and all(0 < p.confidence < 1 for p in proposals.proposals)

    trainer.publish_iteration(pid, iteration.id, "model", emu.prediction_resource_id)
    test_image = (TREES / "Test" / "test_image.jpg").read_bytes()
    url = trainer.get_images_by_ids(pid, image_ids=[untagged.id])[0].original_image_uri
    for result in (predictor.classify_image(pid, "model", test_image),
                   predictor.classify_image_with_no_store(pid, "model", test_image),
                   predictor.classify_image_url(pid, "model", url),
                   predictor.classify_image_url_with_no_store(pid, "model", url)):
        assert max(result.predictions, key=lambda p: p.probability).tag_name == "Hemlock"
    quick = trainer.quick_test_image(pid, hemlocks[9][1], iteration_id=iteration.id)
    trainer.quick_test_image_url(pid, url, iteration_id=iteration.id, store=False)
    stored = trainer.query_predictions(pid, PredictionQueryToken(iteration_id=iteration.id)).results
    assert quick.id in {r.id for r in stored} and len(stored) == 3  # classify x2 (store) + quick test
    added = trainer.create_images_from_predictions(
        pid, ImageIdCreateBatch(images=[ImageIdCreateEntry(id=quick.id)], tag_ids=[hemlock.id]))
    assert added.is_batch_successful and added.images[0].source_url == quick.id
    trainer.delete_prediction(pid, [quick.id])
    assert quick.id not in {r.id for r in trainer.query_predictions(pid, PredictionQueryToken()).results}

    export = trainer.export_iteration(pid, iteration.id, "ONNX", flavor="ONNX12")
    assert export.status == "Exporting"
    deadline = time.monotonic() + 30
    while (exports := trainer.get_exports(pid, iteration.id))[0].status == "Exporting":
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling, as a client does
    assert exports[0].status == "Done" and exports[0].flavor == "ONNX12"
    package = b"".join(trainer.get_artifact(pid, exports[0].download_uri))
    assert package[:2] == b"PK"  # a zip
    thumbnail = b"".join(trainer.get_artifact(pid, trainer.get_images_by_ids(pid, image_ids=[untagged.id])[0]
                                              .thumbnail_uri))
    assert thumbnail[:3] == b"\xff\xd8\xff" or thumbnail[:4] == b"\x89PNG"

    token = trainer.export_project(pid)
    imported = trainer.import_project(token.token, name="imported copy")
    assert imported.name == "imported copy"

    trainer.unpublish_iteration(pid, iteration.id)
    trainer.delete_iteration(pid, iteration.id)
    trainer.delete_images(pid, image_ids=[untagged.id])
    assert trainer.get_untagged_image_count(pid) == 0
    trainer.delete_project(pid)


def _detection(trainer, predictor, emu) -> None:
    pid = trainer.create_project(f"every method od {uuid.uuid4()}", domain_id=DETECTION).id
    tags = {n: trainer.create_tag(pid, n).id for n in ("fork", "scissors")}
    regions = json.loads((SAMPLES / "od_regions.json").read_text())
    entries, first = [], None
    for name, boxes in sorted(regions.items()):
        folder = "fork" if name.startswith("fork") else "scissors"
        data = (SAMPLES / "ObjectDetection" / "Images" / folder / name).read_bytes()
        if first is None:
            first = data  # uploaded without regions, then given one by CreateImageRegions
            continue
        entries.append(ImageFileCreateEntry(name=name, contents=data, regions=[
            Region(tag_id=tags[b["tag"]], left=b["left"], top=b["top"], width=b["width"], height=b["height"])
            for b in boxes]))
    for start in range(0, len(entries), 64):
        assert trainer.create_images_from_files(pid, ImageFileCreateBatch(images=entries[start:start + 64])) \
            .is_batch_successful
    image = trainer.create_images_from_data(pid, first).images[0].image
    box = next(iter(sorted(regions.items())))[1][0]
    made = trainer.create_image_regions(pid, [
        ImageRegionCreateEntry(image_id=image.id, tag_id=tags[box["tag"]], left=box["left"], top=box["top"],
                               width=box["width"], height=box["height"]),
        ImageRegionCreateEntry(image_id=image.id, tag_id=tags[box["tag"]], left=0.0, top=0.0, width=0.1,
                               height=0.1)])
    assert len(made.created) == 2
    trainer.delete_image_regions(pid, [made.created[1].region_id])

    iteration = _wait(trainer, pid, trainer.train_project(pid))
    trainer.publish_iteration(pid, iteration.id, "od", emu.prediction_resource_id)
    test_image = (SAMPLES / "ObjectDetection" / "Images" / "test" / "test_image.jpg").read_bytes()
    url = trainer.get_images_by_ids(pid, image_ids=[image.id])[0].original_image_uri
    for result in (predictor.detect_image(pid, "od", test_image),
                   predictor.detect_image_with_no_store(pid, "od", test_image),
                   predictor.detect_image_url(pid, "od", url),
                   predictor.detect_image_url_with_no_store(pid, "od", url)):
        assert result.predictions and all(p.bounding_box is not None for p in result.predictions)
    trainer.unpublish_iteration(pid, iteration.id)
    trainer.delete_project(pid)


def test_every_sdk_method_works_against_the_emulator(emulator_thread):
    called: set[str] = set()
    emu = emulator_thread
    trainer = Recorder(CustomVisionTrainingClient(
        emu.endpoint, ApiKeyCredentials(in_headers={"Training-key": emu.training_key})), called)
    predictor = Recorder(CustomVisionPredictionClient(
        emu.endpoint, ApiKeyCredentials(in_headers={"Prediction-key": emu.prediction_key})), called)
    _classification(trainer, predictor, emu)
    _detection(trainer, predictor, emu)
    trainer.close()
    predictor.close()

    expected = public_methods(CustomVisionTrainingClient) | public_methods(CustomVisionPredictionClient)
    assert len(public_methods(CustomVisionTrainingClient)) >= 53
    assert len(public_methods(CustomVisionPredictionClient)) >= 9
    assert expected - called == set(), f"SDK methods this test never called: {sorted(expected - called)}"
