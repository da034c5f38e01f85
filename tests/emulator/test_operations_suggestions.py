"""Suggested tags of untagged images (SuggestTagsAndRegions, QuerySuggestedImages and their count)
from the trained model, region proposals, and images created from stored predictions."""

from __future__ import annotations

import math

import pytest

from ._helpers import jpeg
from ._ops_helpers import TREES, Client, Trees, detection_project, trained_trees

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def c(emulator_thread) -> Client:
    return Client(emulator_thread)


@pytest.fixture(scope="module")
def trees(c) -> Trees:
    return trained_trees(c)


def test_suggest_tags_scores_untagged_images_with_the_model(c, trees):
    image_id = trees.untagged["Test"]  # the quickstart's test image: a hemlock
    got = c.json("POST", f"/projects/{trees.pid}/tagsandregions/suggestions",
                 params={"iterationId": trees.iteration["id"], "imageIds": image_id})
    assert len(got) == 1
    s = got[0]
    assert list(s) == ["id", "project", "iteration", "created", "predictions", "predictionUncertainty"]
    assert (s["id"], s["project"], s["iteration"]) == (image_id, trees.pid, trees.iteration["id"])
    best = max(s["predictions"], key=lambda p: p["probability"])
    assert best["tagName"] == "Hemlock" and best["tagType"] == "Regular"
    assert abs(sum(p["probability"] for p in s["predictions"]) - 1) < 1e-6  # multiclass
    entropy = -sum(p["probability"] * math.log2(p["probability"]) for p in s["predictions"] if p["probability"] > 0)
    assert s["predictionUncertainty"] == pytest.approx(entropy)


def test_query_suggested_images_pages_and_filters_by_threshold(c, trees):
    path = f"/projects/{trees.pid}/images/suggested"
    params = {"iterationId": trees.iteration["id"]}
    query = {"tagIds": list(trees.tags.values()), "threshold": 0.0, "maxCount": 1}
    first = c.json("POST", path, params=params, json=query)
    assert first["token"]["sortBy"] == "UncertaintyAscending" and first["token"]["continuation"] == "1"
    assert first["token"]["tagIds"] == query["tagIds"] and isinstance(first["token"]["session"], str)
    second = c.json("POST", path, params=params, json={**query, "continuation": first["token"]["continuation"]})
    assert second["token"]["continuation"] is None
    results = first["results"] + second["results"]
    assert {r["id"] for r in results} == set(trees.untagged.values())  # every untagged image, scored once
    assert results[0]["predictionUncertainty"] <= results[1]["predictionUncertainty"]
    r = results[0]
    assert list(r)[:6] == ["width", "height", "resizedImageUri", "thumbnailUri", "originalImageUri", "domain"]
    assert r["domain"] == "0732100f-1a38-4e49-a514-c9b44c697ab5" and r["width"] > 0
    descending = c.json("POST", path, params=params, json={**query, "maxCount": 10,
                                                           "sortBy": "UncertaintyDescending"})["results"]
    assert [x["id"] for x in descending] == [x["id"] for x in reversed(results)]
    # a threshold above every probability leaves nothing
    assert c.json("POST", path, params=params, json={**query, "threshold": 1.01})["results"] == []


def test_query_suggested_image_count_per_tag(c, trees):
    path = f"/projects/{trees.pid}/images/suggested/count"
    params = {"iterationId": trees.iteration["id"]}
    hemlock, cherry = trees.tags["Hemlock"], trees.tags["Japanese Cherry"]
    everything = c.json("POST", path, params=params, json={"tagIds": [hemlock, cherry], "threshold": 0.0})
    assert everything == {hemlock: 2, cherry: 2}
    strict = c.json("POST", path, params=params, json={"tagIds": [hemlock, cherry], "threshold": 0.5})
    assert sum(strict.values()) == 2  # multiclass: each image has one tag above one half
    query = {"tagIds": [hemlock], "threshold": 0.5}
    suggested = c.json("POST", f"/projects/{trees.pid}/images/suggested", params=params, json=query)
    assert c.json("POST", path, params=params, json=query) == {hemlock: len(suggested["results"])}


def test_tagging_an_image_removes_it_from_the_suggestions(c, trees, emulator_thread):
    from ._ops_helpers import upload

    pid = trees.pid
    extra = upload(c, pid, [sorted((TREES / "Hemlock").glob("*.jpg"))[-1]])[0]["id"]
    params = {"iterationId": trees.iteration["id"]}
    body = {"tagIds": list(trees.tags.values()), "threshold": 0.0}
    assert sum(c.json("POST", f"/projects/{pid}/images/suggested/count", params=params, json=body).values()) == 6
    c.json("POST", f"/projects/{pid}/images/tags", json={"tags": [{"imageId": extra, "tagId": trees.tags["Hemlock"]}]})
    assert sum(c.json("POST", f"/projects/{pid}/images/suggested/count", params=params, json=body).values()) == 4


def test_suggestions_need_a_trained_iteration_and_known_images(c, trees):
    url = f"/projects/{trees.pid}/tagsandregions/suggestions"
    missing = c.call("POST", url, 404, params={"iterationId": trees.iteration["id"],
                                               "imageIds": "00000000-0000-0000-0000-000000000001"})
    assert missing.json()["code"] == "NotFoundImage"
    too_many = ",".join(f"00000000-0000-0000-0000-{i:012d}" for i in range(65))
    assert c.call("POST", url, 400, params={"iterationId": trees.iteration["id"], "imageIds": too_many}).json()["code"] \
        == "BadRequestExceededBatchSize"
    assert c.call("POST", url, 400, params={"imageIds": trees.untagged["Test"]}).json()["code"] \
        == "BadRequestRequiredParamIsNull"


def test_detection_suggestions_carry_boxes(c):
    pid, iteration, _tags = detection_project(c)
    from ._ops_helpers import SAMPLES, upload

    test_image = upload(c, pid, [SAMPLES / "ObjectDetection" / "Images" / "test" / "test_image.jpg"])[0]["id"]
    got = c.json("POST", f"/projects/{pid}/tagsandregions/suggestions",
                 params={"iterationId": iteration["id"], "imageIds": test_image})[0]
    assert got["predictions"] and all("boundingBox" in p for p in got["predictions"])
    assert max(got["predictions"], key=lambda p: p["probability"])["tagName"] == "fork"
    proposals = c.json("POST", f"/projects/{pid}/images/{test_image}/regionproposals")
    assert (proposals["projectId"], proposals["imageId"]) == (pid, test_image)
    assert 1 <= len(proposals["proposals"]) <= 20
    confidences = [p["confidence"] for p in proposals["proposals"]]
    assert confidences == sorted(confidences, reverse=True) and all(0 < p < 1 for p in confidences)
    for p in proposals["proposals"]:
        box = p["boundingBox"]
        assert box["left"] >= 0 and box["left"] + box["width"] <= 1 + 1e-9 and box["width"] > 0
        assert box["top"] >= 0 and box["top"] + box["height"] <= 1 + 1e-9 and box["height"] > 0


def test_region_proposals_need_no_training_and_find_a_clear_object(c):
    import io

    from PIL import Image

    pid = c.json("POST", "/projects", params={"name": "proposals"})["id"]
    img = Image.new("RGB", (320, 240), (235, 235, 235))
    img.paste((20, 40, 200), (160, 60, 280, 180))  # a blue box on a plain background
    out = io.BytesIO()
    img.save(out, "PNG")
    created = c.json("POST", f"/projects/{pid}/images", files=[("imageData", ("box.png", out.getvalue()))])
    image_id = created["images"][0]["image"]["id"]
    proposals = c.json("POST", f"/projects/{pid}/images/{image_id}/regionproposals")["proposals"]
    truth = (0.5, 0.25, 0.875, 0.75)

    def iou(b):
        x0, y0, x1, y1 = b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]
        ix, iy = min(x1, truth[2]) - max(x0, truth[0]), min(y1, truth[3]) - max(y0, truth[1])
        inter = max(0, ix) * max(0, iy)
        return inter / ((x1 - x0) * (y1 - y0) + 0.375 * 0.5 - inter)

    assert iou(proposals[0]["boundingBox"]) >= 0.8


def test_create_images_from_predictions_adds_the_stored_image(c, trees):
    quick = c.call("POST", f"/projects/{trees.pid}/quicktest/image", params={"store": "true"},
                   files=[("imageData", ("q.jpg", jpeg(4242, size=(96, 64), noise=True)))]).json()
    before = c.json("GET", f"/projects/{trees.pid}/images/count")
    tag = trees.tags["Hemlock"]
    body = c.call("POST", f"/projects/{trees.pid}/images/predictions",
                  json={"images": [{"id": quick["id"]}], "tagIds": [tag]}).json()
    assert body["isBatchSuccessful"] and body["images"][0]["sourceUrl"] == quick["id"]
    created = body["images"][0]
    assert created["status"] == "OK"
    assert c.json("GET", f"/projects/{trees.pid}/images/count") == before + 1
    stored = c.s.get(created["image"]["originalImageUri"], timeout=30).content
    assert stored == jpeg(4242, size=(96, 64), noise=True)
    assert [t["tagId"] for t in created["image"]["tags"]] == [tag]
    unknown = c.call("POST", f"/projects/{trees.pid}/images/predictions", 207,
                     json={"images": [{"id": "00000000-0000-0000-0000-000000000001"}, {"id": "nope"}]}).json()
    assert [i["status"] for i in unknown["images"]] == ["ErrorSource", "ErrorSource"]
    assert not unknown["isBatchSuccessful"]
