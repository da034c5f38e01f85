"""GetImagePerformances / GetImagePerformanceCount: the images the iteration's evaluation held
out (as the service shows 2 of a 10-image project), with what the model predicted for each."""

from __future__ import annotations

import pytest

from ._ops_helpers import Client, Trees, trained_trees

pytestmark = pytest.mark.timeout(90)

KEYS = ["id", "created", "predictions", "width", "height", "imageUri", "thumbnailUri", "tags", "regions"]


@pytest.fixture(scope="module")
def c(emulator_thread) -> Client:
    return Client(emulator_thread)


@pytest.fixture(scope="module")
def trees(c) -> Trees:
    return trained_trees(c)


def _url(trees: Trees) -> str:
    return f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/performance/images"


def test_held_out_images_with_their_predictions(c, trees):
    count = c.json("GET", _url(trees) + "/count")
    performances = c.json("GET", _url(trees))
    # 9 + 9 training images, k = min(5, 9) folds: the first fold holds 4 of them back
    assert count == len(performances) == 4
    tagged = {i["id"] for i in c.json("GET", f"/projects/{trees.pid}/images/tagged", params={"take": 256})}
    for p in performances:
        assert list(p) == KEYS
        assert p["id"] in tagged and p["regions"] == [] and len(p["tags"]) == 1
        assert {x["tagName"] for x in p["predictions"]} == {"Hemlock", "Japanese Cherry"}
        assert sum(x["probability"] for x in p["predictions"]) == pytest.approx(1.0)
        assert c.s.get(p["imageUri"], timeout=30).status_code == 200
    # the same answer again (stored, not recomputed with other results); the image URIs are signed
    # per request with an expiry in whole seconds, as the service's SAS links are, so they may differ
    assert _unsigned(c.json("GET", _url(trees))) == _unsigned(performances)


def _unsigned(performances: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k not in ("imageUri", "thumbnailUri")} for p in performances]


def test_filters_order_and_paging(c, trees):
    everything = _unsigned(c.json("GET", _url(trees), params={"orderBy": "Oldest"}))
    assert _unsigned(c.json("GET", _url(trees))) == list(reversed(everything))  # Newest is the default
    hemlock = trees.tags["Hemlock"]
    only = c.json("GET", _url(trees), params={"tagIds": hemlock})
    assert only and all(p["tags"][0]["tagId"] == hemlock for p in only)
    assert c.json("GET", _url(trees) + "/count", params={"tagIds": hemlock}) == len(only)
    page = _unsigned(c.json("GET", _url(trees), params={"orderBy": "Oldest", "take": 2, "skip": 1}))
    assert page == everything[1:3]
    too_many = ",".join(["00000000-0000-0000-0000-000000000001"] * 21)
    assert c.call("GET", _url(trees), 400, params={"tagIds": too_many}).json()["code"] == "BadRequestExceededBatchSize"


def test_an_untrained_or_unknown_iteration_has_no_image_performance(c, trees):
    url = f"/projects/{trees.pid}/iterations/00000000-0000-0000-0000-000000000001/performance/images"
    assert c.call("GET", url, 404).json()["code"] == "NotFoundIteration"
    assert c.call("GET", url + "/count", 404).json()["code"] == "NotFoundIteration"
