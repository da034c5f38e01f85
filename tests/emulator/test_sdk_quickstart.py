"""The official SDK 3.1.1 runs Microsoft's quickstart flows, unchanged, against the emulator."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from msrest.authentication import ApiKeyCredentials

from .conftest import SAMPLES

pytestmark = pytest.mark.timeout(90)


def _clients(emu):
    trainer = CustomVisionTrainingClient(emu.endpoint, ApiKeyCredentials(in_headers={"Training-key": emu.training_key}))
    predictor = CustomVisionPredictionClient(
        emu.endpoint, ApiKeyCredentials(in_headers={"Prediction-key": emu.prediction_key})
    )
    return trainer, predictor


def _wait_trained(trainer, project_id, iteration):
    deadline = time.monotonic() + 60
    while iteration.status != "Completed":
        assert iteration.status == "Training", iteration.status
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.1)  # the quickstart polls every 10 s; a poll, not a wait for a pass
        iteration = trainer.get_iteration(project_id, iteration.id)
    return iteration


def test_classification_quickstart(emulator_thread):
    trainer, predictor = _clients(emulator_thread)
    publish_iteration_name = "classifyModel"
    project = trainer.create_project("My New Project " + str(uuid.uuid4()))
    hemlock_tag = trainer.create_tag(project.id, "Hemlock")
    cherry_tag = trainer.create_tag(project.id, "Japanese Cherry")

    base_image_location = os.path.join(SAMPLES, "ImageClassification", "Images")
    image_list = []
    for image_num in range(1, 11):
        file_name = "hemlock_{}.jpg".format(image_num)  # noqa: UP032 - the quickstart as published
        with open(os.path.join(base_image_location, "Hemlock", file_name), "rb") as image_contents:
            image_list.append(ImageFileCreateEntry(name=file_name, contents=image_contents.read(), tag_ids=[hemlock_tag.id]))
    for image_num in range(1, 11):
        file_name = "japanese_cherry_{}.jpg".format(image_num)  # noqa: UP032 - the quickstart as published
        with open(os.path.join(base_image_location, "Japanese_Cherry", file_name), "rb") as image_contents:
            image_list.append(ImageFileCreateEntry(name=file_name, contents=image_contents.read(), tag_ids=[cherry_tag.id]))

    upload_result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=image_list))
    assert upload_result.is_batch_successful, [i.status for i in upload_result.images]
    assert trainer.get_tagged_image_count(project.id) == 20

    iteration = trainer.train_project(project.id)
    iteration = _wait_trained(trainer, project.id, iteration)
    trainer.publish_iteration(project.id, iteration.id, publish_iteration_name, emulator_thread.prediction_resource_id)

    with open(os.path.join(base_image_location, "Test", "test_image.jpg"), "rb") as image_contents:
        results = predictor.classify_image(project.id, publish_iteration_name, image_contents.read())
    best = max(results.predictions, key=lambda p: p.probability)
    assert best.tag_name == "Hemlock"
    assert 0.0 <= best.probability <= 1.0
    assert {p.tag_name for p in results.predictions} == {"Hemlock", "Japanese Cherry"}

    perf = trainer.get_iteration_performance(project.id, iteration.id)
    assert 0.0 <= perf.precision <= 1.0 and len(perf.per_tag_performance) == 2


def test_object_detection_quickstart(emulator_thread):
    trainer, predictor = _clients(emulator_thread)
    publish_iteration_name = "detectModel"
    obj_detection_domain = next(
        domain for domain in trainer.get_domains() if domain.type == "ObjectDetection" and domain.name == "General"
    )
    project = trainer.create_project("My Detection Project " + str(uuid.uuid4()), domain_id=obj_detection_domain.id)
    fork_tag = trainer.create_tag(project.id, "fork")
    scissors_tag = trainer.create_tag(project.id, "scissors")

    regions_by_file = json.loads((SAMPLES / "od_regions.json").read_text())
    tags = {"fork": fork_tag.id, "scissors": scissors_tag.id}
    base_image_location = os.path.join(SAMPLES, "ObjectDetection", "Images")
    tagged_images_with_regions = []
    for file_name, boxes in sorted(regions_by_file.items()):
        folder = "fork" if file_name.startswith("fork") else "scissors"
        regions = [Region(tag_id=tags[b["tag"]], left=b["left"], top=b["top"], width=b["width"], height=b["height"])
                   for b in boxes]
        with open(os.path.join(base_image_location, folder, file_name), mode="rb") as image_contents:
            tagged_images_with_regions.append(ImageFileCreateEntry(name=file_name, contents=image_contents.read(), regions=regions))

    upload_result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=tagged_images_with_regions))
    assert upload_result.is_batch_successful, [i.status for i in upload_result.images]

    iteration = trainer.train_project(project.id)
    iteration = _wait_trained(trainer, project.id, iteration)
    trainer.publish_iteration(project.id, iteration.id, publish_iteration_name, emulator_thread.prediction_resource_id)

    test_dir = os.path.join(base_image_location, "test")
    test_file = sorted(os.listdir(test_dir))[0]
    with open(os.path.join(test_dir, test_file), mode="rb") as test_data:
        results = predictor.detect_image(project.id, publish_iteration_name, test_data)
    best = max(results.predictions, key=lambda p: p.probability)
    assert best.tag_name == "fork"
    box = best.bounding_box
    assert 0 <= box.left <= 1 and 0 <= box.top <= 1 and box.width > 0 and box.height > 0
