"""Models: camelCase <-> snake_case, nested schemas, unknown fields kept, base64 contents."""

from __future__ import annotations

import pytest

from cvbulk.client import (
    Image,
    ImageCreateResult,
    ImageCreateSummary,
    ImageFileCreateEntry,
    ImagePrediction,
    Prediction,
    ImageRegionCreateSummary,
    ImageTagCreateSummary,
    Iteration,
    IterationPerformance,
    Project,
    ProjectExport,
    Region,
    Tag,
)

# the example answers of the spec (Training v3.3 CreateImagesFromData 207, GetImages, Prediction DetectImageUrl)
SUMMARY_207 = {"isBatchSuccessful": False, "images": [
    {"sourceUrl": "\"hemlock_10.jpg\"", "status": "OK", "image": {
        "id": "4d6eb844-42ee-42bc-bd6f-c32455ef07c9", "created": "2017-12-19T15:56:10Z", "width": 1095,
        "height": 900, "resizedImageUri": "{Resized Image Uri}", "originalImageUri": "{Image Uri}",
        "thumbnailUri": "{Thumbnail Uri}", "tags": [{"tagId": "b607964f-7bd6-4a3b-a869-6791fb6aab87",
                                                       "created": "2017-12-19T15:56:09Z", "tagName": "tag 1"}]}},
    {"sourceUrl": "\"hemlock_6.jpg\"", "status": "ErrorLimitExceed"},
]}
IMAGE_WITH_REGIONS = {
    "id": "i1", "created": "2026-11-23T14:30:00.1234567Z", "width": 10, "height": 20, "metadata": {"k": "v"},
    "regions": [{"regionId": "r1", "tagName": "fork", "created": "c", "tagId": "t1", "left": 0.1, "top": 0.2,
                 "width": 0.3, "height": 0.4}],
    "tags": [],
}


def test_summary_parses_and_round_trips():
    summary = ImageCreateSummary.from_json(SUMMARY_207)
    assert summary.is_batch_successful is False
    first, second = summary.images
    assert first.status == "OK" and first.image.width == 1095 and first.image.tags[0].tag_name == "tag 1"
    assert first.image.original_image_uri == "{Image Uri}" and first.image.created == "2017-12-19T15:56:10Z"
    assert second.image is None and not second.ok and second.source_name == "hemlock_6.jpg"
    assert summary.to_json() == SUMMARY_207


def test_regions_and_metadata():
    image = Image.from_json(IMAGE_WITH_REGIONS)
    assert image.regions[0].region_id == "r1" and image.regions[0].left == 0.1
    assert image.metadata == {"k": "v"} and image.tags == ()
    assert image.to_json() == IMAGE_WITH_REGIONS


def test_unknown_fields_are_kept_in_extra_and_written_back():
    body = {"id": "p", "name": "n", "description": "", "settings": {"domainId": "d", "newSetting": 1},
            "futureField": [1, 2], "drModeEnabled": False}
    project = Project.from_json(body)
    assert project.extra == {"futureField": [1, 2]} and project.settings.extra == {"newSetting": 1}
    assert project.dr_mode_enabled is False
    assert project.to_json() == body
    assert "futureField" not in repr(project)  # extra stays out of the repr


def test_to_json_leaves_out_none_and_unset_timestamps():
    assert Tag(id="t", name="a").to_json() == {"id": "t", "name": "a", "type": "Regular", "imageCount": 0}
    assert Iteration(id="i", name="x", status="Training").to_json() == {
        "id": "i", "name": "x", "status": "Training", "exportable": False, "trainingType": "Regular",
        "reservedBudgetInHours": 0}
    assert Project(id="p", name="n").to_json() == {"id": "p", "name": "n", "drModeEnabled": False}


def test_file_entry_contents_are_base64_on_the_wire():
    entry = ImageFileCreateEntry("a.jpg", b"\x00\xff\x10", tag_ids=("t",), regions=(Region("t", 0, 0, 1, 1),))
    wire = entry.to_json()
    assert wire == {"name": "a.jpg", "contents": "AP8Q", "tagIds": ["t"],
                    "regions": [{"tagId": "t", "left": 0, "top": 0, "width": 1, "height": 1}]}
    assert ImageFileCreateEntry.from_json(wire) == entry


def test_spec_spellings_that_are_not_plain_camel_case():
    export = ProjectExport.from_json({"estimatedImportTimeInMS": 12, "token": "t", "iterationCount": 1})
    assert export.estimated_import_time_in_ms == 12 and export.extra == {}
    assert export.to_json() == {"iterationCount": 1, "imageCount": 0, "tagCount": 0, "regionCount": 0,
                                "estimatedImportTimeInMS": 12, "token": "t"}


def test_prediction_and_performance_models():
    pred = ImagePrediction.from_json({"id": "x", "project": "p", "iteration": "i", "predictions": [
        {"probability": 0.5, "tagId": "t", "tagName": "n", "boundingBox": {"left": 0, "top": 0.5, "width": 1,
                                                                           "height": 0.5}}]})
    assert pred.predictions[0].bounding_box.top == 0.5
    perf = IterationPerformance.from_json({"perTagPerformance": [{"id": "t", "name": "a", "recall": 0.5}], "precision": 1})
    assert perf.per_tag_performance[0].recall == 0.5 and perf.precision == 1
    assert ImageRegionCreateSummary.from_json({}).created == ()
    tags = ImageTagCreateSummary.from_json({"created": [{"imageId": "i", "tagId": "t"}], "exceeded": []})
    assert tags.created[0].image_id == "i"


def test_a_prediction_answer_parses_the_same_on_the_quick_path_and_the_generic_one():
    usual = {"probability": 0.25, "tagId": "t", "tagName": "n", "tagType": "Regular",
             "boundingBox": {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}}
    odd = {"probability": 0.5, "tagId": "u", "tagName": "m", "newField": [1]}  # an unknown key: kept in extra
    answer = ImagePrediction.from_json({"id": "x", "project": "p", "iteration": "i", "predictions": [usual, odd]})
    assert answer.predictions == (Prediction.from_json(usual), Prediction.from_json(odd))
    assert answer.predictions[1].extra == {"newField": [1]} and answer.predictions[0].bounding_box.height == 0.4
    with pytest.raises(ValueError, match="Prediction has no tagName"):
        ImagePrediction.from_json({"id": "x", "project": "p", "iteration": "i",
                                   "predictions": [{"probability": 1.0, "tagId": "t"}]})


def test_source_name_strips_only_surrounding_quotes():
    assert ImageCreateResult('"a b.jpg"', "OK").source_name == "a b.jpg"
    assert ImageCreateResult("https://x/y.jpg", "OK").source_name == "https://x/y.jpg"
    assert ImageCreateResult('"', "OK").source_name == '"'
    assert ImageCreateResult("a", "OKDuplicate").ok and not ImageCreateResult("a", "ErrorSource").ok


def test_missing_required_fields_fail_loudly_with_their_names():
    with pytest.raises(ValueError, match="Region has no left, top, width, height"):
        Region.from_json({"tagId": "t"})
    with pytest.raises(ValueError, match="Tag has no id"):
        Tag.from_json({"name": "a"})
