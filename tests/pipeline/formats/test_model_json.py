"""model.json from client objects or the service's dicts: iterations with dates, domain and performance."""

from __future__ import annotations

import json

from cvbulk.client import Iteration, IterationPerformance, Project
from cvbulk.pipeline.formats import MemorySink, model_document, write_model_json

ITER = {
    "id": "it-2", "name": "Iteration 2", "status": "Completed", "created": "2026-01-02T00:00:00Z",
    "lastModified": "2026-01-02T01:00:00Z", "trainedAt": "2026-01-02T00:30:00Z", "domainId": "DOM-1",
    "classificationType": "Multiclass", "trainingType": "Regular", "exportableTo": ["ONNX"],
    "trainingTimeInMinutes": 3, "reservedBudgetInHours": 0,
}
PERF = {
    "precision": 0.9, "recall": 0.8, "averagePrecision": 0.85, "precisionStdDeviation": 0.01,
    "recallStdDeviation": 0.02,  # the service always sends both deviations (the client's models default them)
    "perTagPerformance": [{"id": "t1", "name": "cat", "precision": 1.0, "recall": 0.5, "averagePrecision": 0.7,
                           "precisionStdDeviation": 0.0, "recallStdDeviation": 0.0}],
}
PROJECT = {"id": "p1", "name": "trees", "settings": {"domainId": "DOM-1", "classificationType": "Multiclass"}}


def test_from_client_models_and_from_dicts_is_the_same_document() -> None:
    older = dict(ITER, id="it-1", name="Iteration 1", created="2026-01-01T00:00:00Z")
    from_models = model_document(
        Project.from_json(PROJECT),
        [(Iteration.from_json(ITER), IterationPerformance.from_json(PERF)), (Iteration.from_json(older), None)],
        domains={"dom-1": "General"}, threshold=0.5, overlap_threshold=0.3,
    )
    from_dicts = model_document(PROJECT, [(ITER, PERF), (older, None)], domains={"DOM-1": "General"},
                                threshold=0.5, overlap_threshold=0.3)
    assert from_models == from_dicts
    first, second = from_models["iterations"]
    assert first["name"] == "Iteration 1" and "performance" not in first  # oldest first
    assert second["domain"] == "General" and second["training_type"] == "Regular"
    assert second["trained_at"] == "2026-01-02T00:30:00Z" and second["exportable_to"] == ["ONNX"]
    assert second["performance"]["average_precision"] == 0.85
    assert second["performance"]["per_tag"] == [
        {"name": "cat", "id": "t1", "precision": 1.0, "recall": 0.5, "average_precision": 0.7,
         "precision_std_deviation": 0.0, "recall_std_deviation": 0.0}]
    assert from_models["thresholds"] == {"probability": 0.5, "overlap": 0.3}
    assert from_models["project"]["domain"] == "General"


def test_written_as_json() -> None:
    sink = MemorySink()
    result = write_model_json(sink, PROJECT, [(ITER, PERF)])
    assert result.files == ["model.json"]
    doc = json.loads(sink.files["model.json"])
    assert doc["format"] == "cvbulk-model/1" and doc["iterations"][0]["name"] == "Iteration 2"


def test_exported_image_from_a_client_image() -> None:
    from cvbulk.client import Image
    from cvbulk.pipeline.formats import RegionLabel, from_client_image

    image = Image.from_json({
        "id": "i1", "created": "2026-01-01T00:00:00Z", "width": 640, "height": 480, "metadata": {"k": "v"},
        "tags": [{"tagId": "t1", "tagName": "cat"}],
        "regions": [{"regionId": "r1", "tagId": "t2", "tagName": "dog", "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}],
    })
    got = from_client_image(image, "images/i1.jpg")
    assert got.tags == ("cat", "dog") and got.regions == (RegionLabel("dog", 0.1, 0.2, 0.3, 0.4),)
    assert (got.id, got.file, got.width, got.height, dict(got.metadata), got.created) == (
        "i1", "images/i1.jpg", 640, 480, {"k": "v"}, "2026-01-01T00:00:00Z")
