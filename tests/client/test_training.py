"""Every Training v3.3 operation: method, path, query, headers and body shape, and the answer's parsing."""

from __future__ import annotations

import base64

import pytest

from cvbulk.client import (
    Domain,
    Image,
    ImageCreateSummary,
    ImageFileCreateEntry,
    ImagePrediction,
    ImageRegionCreateEntry,
    ImageUrlCreateEntry,
    Iteration,
    Project,
    ProjectSettings,
    Region,
    Tag,
)

from ._support import KEY, TRAINING_BASE as B

P = "64b822c5-8082-4b36-a426-27225f4aa18c"
T1 = "b607964f-7bd6-4a3b-a869-6791fb6aab87"
T2 = "a0d06a54-18e4-4787-a9f9-27a9c13a91e8"
IT = "45c79472-7198-46e1-8ed7-bad2ca111957"
IMG = {
    "id": "4d6eb844-42ee-42bc-bd6f-c32455ef07c9", "created": "2017-12-19T15:56:10Z", "width": 1095,
    "height": 900, "resizedImageUri": "r", "originalImageUri": "o", "thumbnailUri": "t",
    "tags": [{"tagId": T1, "created": "2017-12-19T15:56:09Z", "tagName": "tag 1"}],
}
PROJECT = {
    "id": P, "name": "birds", "description": "d", "settings": {"domainId": "ee85a74c", "classificationType":
    "Multiclass", "targetExportPlatforms": []}, "created": "2019-01-01T00:00:00Z", "status": "Succeeded",
}
TAG = {"id": T1, "name": "Hemlock", "description": "", "type": "Regular", "imageCount": 3}
ITERATION = {"id": IT, "name": "Iteration 1", "status": "Training", "projectId": P, "trainingType": "Regular"}
PREDICTION = {"id": "x", "project": P, "iteration": IT, "created": "2019-03-10T06:10:28Z",
              "predictions": [{"probability": 0.9, "tagId": T1, "tagName": "Hemlock", "tagType": "Regular"}]}


def assert_auth(call) -> None:
    assert call.headers["Training-Key"] == KEY
    assert call.headers["Accept"] == "application/json"


# (operation call, method, path, expected query, expected JSON body, answer, expected result)
SIMPLE = [
    (lambda c: c.get_domains(), "GET", "/domains", {}, None,
     [{"id": "d1", "name": "General", "type": "Classification", "exportable": False, "enabled": True}],
     [Domain(id="d1", name="General", type="Classification", exportable=False, enabled=True)]),
    (lambda c: c.get_domain("d1"), "GET", "/domains/d1", {}, None,
     {"id": "d1", "name": "General", "type": "ObjectDetection"},
     Domain(id="d1", name="General", type="ObjectDetection")),
    (lambda c: c.get_projects(), "GET", "/projects", {}, None, [PROJECT], [Project.from_json(PROJECT)]),
    (lambda c: c.get_project(P), "GET", f"/projects/{P}", {}, None, PROJECT, Project.from_json(PROJECT)),
    (lambda c: c.create_project("birds", description="d", domain_id="ee85a74c", classification_type="Multilabel",
                                target_export_platforms=["CoreML", "ONNX"]),
     "POST", "/projects", {"name": "birds", "description": "d", "domainId": "ee85a74c",
                           "classificationType": "Multilabel", "targetExportPlatforms": "CoreML,ONNX"},
     None, PROJECT, Project.from_json(PROJECT)),
    (lambda c: c.create_project("birds"), "POST", "/projects", {"name": "birds"}, None, PROJECT,
     Project.from_json(PROJECT)),
    (lambda c: c.update_project(P, Project(id=P, name="b2", description="d2", settings=ProjectSettings(domain_id="x"))),
     "PATCH", f"/projects/{P}", {}, {"name": "b2", "description": "d2", "settings": {"domainId": "x"}},
     PROJECT, Project.from_json(PROJECT)),
    (lambda c: c.delete_project(P), "DELETE", f"/projects/{P}", {}, None, 204, None),
    (lambda c: c.export_project(P), "GET", f"/projects/{P}/export", {}, None,
     {"iterationCount": 1, "imageCount": 2, "tagCount": 3, "regionCount": 0, "estimatedImportTimeInMS": 9,
      "token": "tok"}, None),
    (lambda c: c.import_project("tok", name="copy"), "POST", "/projects/import", {"token": "tok", "name": "copy"},
     None, PROJECT, Project.from_json(PROJECT)),
    (lambda c: c.get_tags(P), "GET", f"/projects/{P}/tags", {}, None, [TAG], [Tag.from_json(TAG)]),
    (lambda c: c.get_tags(P, iteration_id=IT), "GET", f"/projects/{P}/tags", {"iterationId": IT}, None, [TAG],
     [Tag.from_json(TAG)]),
    (lambda c: c.get_tag(P, T1), "GET", f"/projects/{P}/tags/{T1}", {}, None, TAG, Tag.from_json(TAG)),
    (lambda c: c.create_tag(P, "Hemlock", description="tree", type="Negative"), "POST", f"/projects/{P}/tags",
     {"name": "Hemlock", "description": "tree", "type": "Negative"}, None, TAG, Tag.from_json(TAG)),
    (lambda c: c.update_tag(P, T1, name="H", description="x", type="Regular"), "PATCH", f"/projects/{P}/tags/{T1}",
     {}, {"name": "H", "description": "x", "type": "Regular"}, TAG, Tag.from_json(TAG)),
    (lambda c: c.delete_tag(P, T1), "DELETE", f"/projects/{P}/tags/{T1}", {}, None, 204, None),
    (lambda c: c.create_image_regions(P, [ImageRegionCreateEntry("i1", T1, 0.1, 0.2, 0.3, 0.4)]),
     "POST", f"/projects/{P}/images/regions", {},
     {"regions": [{"imageId": "i1", "tagId": T1, "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}]},
     {"created": [{"imageId": "i1", "regionId": "r1", "tagName": "t", "created": "c", "tagId": T1, "left": 0.1,
                   "top": 0.2, "width": 0.3, "height": 0.4}], "duplicated": [], "exceeded": []}, None),
    (lambda c: c.create_image_tags(P, [("i1", T1), ("i2", T2)]), "POST", f"/projects/{P}/images/tags", {},
     {"tags": [{"imageId": "i1", "tagId": T1}, {"imageId": "i2", "tagId": T2}]},
     {"created": [{"imageId": "i1", "tagId": T1}], "duplicated": [{"imageId": "i2", "tagId": T2}],
      "exceeded": []}, None),
    (lambda c: c.delete_image_tags(P, ["i1", "i2"], [T1]), "DELETE", f"/projects/{P}/images/tags",
     {"imageIds": "i1,i2", "tagIds": T1}, None, 204, None),
    (lambda c: c.get_images(P, tagging_status="Tagged", tag_ids=[T1, T2], order_by="Newest", take=256, skip=512,
                            iteration_id=IT, metadata_filter="key eq 'a'"),
     "GET", f"/projects/{P}/images",
     {"iterationId": IT, "tagIds": f"{T1},{T2}", "taggingStatus": "Tagged", "orderBy": "Newest", "take": "256",
      "skip": "512", "$filter": "key eq 'a'"}, None, [IMG], [Image.from_json(IMG)]),
    (lambda c: c.get_images(P), "GET", f"/projects/{P}/images", {"take": "50", "skip": "0"}, None, [], []),
    (lambda c: c.get_tagged_images(P, tag_ids=[T1], order_by="Oldest", take=10, skip=20, iteration_id=IT),
     "GET", f"/projects/{P}/images/tagged",
     {"iterationId": IT, "tagIds": T1, "orderBy": "Oldest", "take": "10", "skip": "20"}, None, [IMG],
     [Image.from_json(IMG)]),
    (lambda c: c.get_untagged_images(P, take=5), "GET", f"/projects/{P}/images/untagged",
     {"take": "5", "skip": "0"}, None, [IMG], [Image.from_json(IMG)]),
    (lambda c: c.get_image_count(P, tagging_status="Untagged", tag_ids=[T1], iteration_id=IT), "GET",
     f"/projects/{P}/images/count", {"taggingStatus": "Untagged", "tagIds": T1, "iterationId": IT}, None, 12, 12),
    (lambda c: c.get_tagged_image_count(P, tag_ids=[T1, T2]), "GET", f"/projects/{P}/images/tagged/count",
     {"tagIds": f"{T1},{T2}"}, None, 7, 7),
    (lambda c: c.get_untagged_image_count(P), "GET", f"/projects/{P}/images/untagged/count", {}, None, 3, 3),
    (lambda c: c.get_images_by_ids(P, ["i1", "i2"], iteration_id=IT), "GET", f"/projects/{P}/images/id",
     {"imageIds": "i1,i2", "iterationId": IT}, None, [IMG], [Image.from_json(IMG)]),
    (lambda c: c.delete_images(P, ["i1", "i2"]), "DELETE", f"/projects/{P}/images", {"imageIds": "i1,i2"},
     None, 202, None),
    (lambda c: c.delete_images(P, all_images=True, all_iterations=True), "DELETE", f"/projects/{P}/images",
     {"allImages": "true", "allIterations": "true"}, None, 204, None),
    (lambda c: c.train_project(P), "POST", f"/projects/{P}/train", {}, None, ITERATION,
     Iteration.from_json(ITERATION)),
    (lambda c: c.train_project(P, training_type="Advanced", reserved_budget_in_hours=1, force_train=True,
                               notification_email_address="a@b.c", selected_tags=[T1]),
     "POST", f"/projects/{P}/train",
     {"trainingType": "Advanced", "reservedBudgetInHours": "1", "forceTrain": "true",
      "notificationEmailAddress": "a@b.c"}, {"selectedTags": [T1]}, ITERATION, Iteration.from_json(ITERATION)),
    (lambda c: c.get_iterations(P), "GET", f"/projects/{P}/iterations", {}, None, [ITERATION],
     [Iteration.from_json(ITERATION)]),
    (lambda c: c.get_iteration(P, IT), "GET", f"/projects/{P}/iterations/{IT}", {}, None, ITERATION,
     Iteration.from_json(ITERATION)),
    (lambda c: c.update_iteration(P, IT, name="best"), "PATCH", f"/projects/{P}/iterations/{IT}", {},
     {"name": "best"}, ITERATION, Iteration.from_json(ITERATION)),
    (lambda c: c.delete_iteration(P, IT), "DELETE", f"/projects/{P}/iterations/{IT}", {}, None, 204, None),
    (lambda c: c.get_iteration_performance(P, IT, threshold=0.5, overlap_threshold=0.3), "GET",
     f"/projects/{P}/iterations/{IT}/performance", {"threshold": "0.5", "overlapThreshold": "0.3"}, None,
     {"perTagPerformance": [{"id": T1, "name": "Hemlock", "precision": 1.0, "recall": 0.5,
                             "averagePrecision": 0.75}], "precision": 1.0, "recall": 0.5,
      "averagePrecision": 0.75}, None),
    (lambda c: c.publish_iteration(P, IT, "model1", "/subscriptions/x/resourceGroups/y", overwrite=True),
     "POST", f"/projects/{P}/iterations/{IT}/publish",
     {"publishName": "model1", "predictionId": "/subscriptions/x/resourceGroups/y", "overwrite": "true"},
     None, True, True),
    (lambda c: c.unpublish_iteration(P, IT), "DELETE", f"/projects/{P}/iterations/{IT}/publish", {}, None,
     204, None),
    (lambda c: c.quick_test_image_url(P, "https://x/y.jpg", iteration_id=IT, store=False), "POST",
     f"/projects/{P}/quicktest/url", {"iterationId": IT, "store": "false"}, {"url": "https://x/y.jpg"},
     PREDICTION, ImagePrediction.from_json(PREDICTION)),
]


@pytest.mark.parametrize("call, method, path, params, body, answer, expected", SIMPLE)
async def test_operation_request_and_answer(training, mock, call, method, path, params, body, answer, expected):
    if isinstance(answer, int) and not isinstance(answer, bool) and answer >= 200 and answer in (202, 204):
        mock.add(method, B + path, status=answer)
    else:
        mock.add(method, B + path, payload=answer)
    result = await call(training)
    sent = mock.last
    assert sent.method == method
    assert sent.path == B + path
    assert sent.query == params
    assert_auth(sent)
    if body is None:
        assert sent.data is None
    else:
        assert sent.headers["Content-Type"] == "application/json"
        assert sent.json == body
    if expected is not None:
        assert result == expected
    elif answer in (202, 204):
        assert result is None


async def test_create_images_from_data_multipart(training, mock):
    answer = {"isBatchSuccessful": True, "images": [
        {"sourceUrl": '"a.jpg"', "status": "OK", "image": IMG},
        {"sourceUrl": '"b c.png"', "status": "OKDuplicate", "image": IMG},
    ]}
    mock.add("POST", f"{B}/projects/{P}/images", payload=answer)
    data_a, data_b = bytes(range(256)) * 40, b"\x89PNG\r\n\x1a\n" + b"\x00" * 1000
    summary = await training.create_images_from_data(P, [("a.jpg", data_a), ("b c.png", data_b)], tag_ids=[T1, T2])
    call = mock.last
    assert call.method == "POST" and call.path == f"{B}/projects/{P}/images"
    assert call.query == {"tagIds": f"{T1},{T2}"}
    assert_auth(call)
    assert [(p["name"], p["filename"], p["content_type"]) for p in call.parts] == [
        ("imageData", "a.jpg", "application/octet-stream"),
        ("imageData", "b c.png", "application/octet-stream"),
    ]
    assert call.parts[0]["body"] == data_a and call.parts[1]["body"] == data_b
    assert isinstance(summary, ImageCreateSummary) and summary.is_batch_successful
    assert [r.source_name for r in summary.images] == ["a.jpg", "b c.png"]
    assert all(r.ok for r in summary.images)
    assert training.stats.bytes_sent > len(data_a) + len(data_b)


async def test_create_images_from_data_207_multi_status(training, mock):
    answer = {"isBatchSuccessful": False, "images": [
        {"sourceUrl": '"hemlock_10.jpg"', "status": "OK", "image": IMG},
        {"sourceUrl": '"hemlock_6.jpg"', "status": "ErrorLimitExceed"},
        {"sourceUrl": '"bad.gif"', "status": "ErrorImageFormat", "image": None},
    ]}
    mock.add("POST", f"{B}/projects/{P}/images", status=207, payload=answer)
    summary = await training.create_images_from_data(P, [("hemlock_10.jpg", b"1"), ("hemlock_6.jpg", b"2"),
                                                          ("bad.gif", b"3")])
    assert mock.last.query == {}
    assert summary.is_batch_successful is False
    assert [(r.source_name, r.status, r.ok) for r in summary.images] == [
        ("hemlock_10.jpg", "OK", True), ("hemlock_6.jpg", "ErrorLimitExceed", False),
        ("bad.gif", "ErrorImageFormat", False),
    ]
    assert summary.images[0].image.id == IMG["id"] and summary.images[1].image is None
    assert training.stats.retries == 0


async def test_create_images_from_files_json_base64(training, mock):
    mock.add("POST", f"{B}/projects/{P}/images/files", status=207,
             payload={"isBatchSuccessful": False, "images": [{"sourceUrl": "a.jpg", "status": "OK"}]})
    entries = [
        ImageFileCreateEntry("a.jpg", b"\xff\xd8\xff\x00", tag_ids=[T1], regions=[Region(T1, 0.1, 0.2, 0.3, 0.4)]),
        ImageFileCreateEntry("b.jpg", b"\x00\x01"),
    ]
    summary = await training.create_images_from_files(P, entries, tag_ids=[T2], metadata={"k": "v"})
    body = mock.last.json
    assert body == {
        "images": [
            {"name": "a.jpg", "contents": base64.b64encode(b"\xff\xd8\xff\x00").decode(), "tagIds": [T1],
             "regions": [{"tagId": T1, "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}]},
            {"name": "b.jpg", "contents": "AAE=", "tagIds": [], "regions": []},
        ],
        "tagIds": [T2],
        "metadata": {"k": "v"},
    }
    assert summary.images[0].status == "OK"


async def test_create_images_from_urls(training, mock):
    mock.add("POST", f"{B}/projects/{P}/images/urls",
             payload={"isBatchSuccessful": True, "images": [{"sourceUrl": "https://x/1.jpg", "status": "OK"}]})
    summary = await training.create_images_from_urls(P, [ImageUrlCreateEntry("https://x/1.jpg", tag_ids=[T1])])
    assert mock.last.json == {"images": [{"url": "https://x/1.jpg", "tagIds": [T1], "regions": []}]}
    assert summary.images[0].source_url == "https://x/1.jpg"


async def test_quick_test_image_multipart(training, mock):
    mock.add("POST", f"{B}/projects/{P}/quicktest/image", payload=PREDICTION)
    result = await training.quick_test_image(P, b"jpegbytes", iteration_id=IT, store=False)
    call = mock.last
    assert call.query == {"iterationId": IT, "store": "false"}
    assert [(p["name"], p["body"]) for p in call.parts] == [("imageData", b"jpegbytes")]
    assert result.predictions[0].tag_name == "Hemlock" and result.predictions[0].tag_type == "Regular"


async def test_update_tag_fills_unnamed_fields_from_the_current_tag(training, mock):
    mock.add("GET", f"{B}/projects/{P}/tags/{T1}", payload=TAG)
    mock.add("PATCH", f"{B}/projects/{P}/tags/{T1}", payload={**TAG, "name": "Fir"})
    tag = await training.update_tag(P, T1, name="Fir")
    assert mock.last.json == {"name": "Fir", "description": "", "type": "Regular"}
    assert tag.name == "Fir"


async def test_iter_images_pages_with_take_and_skip(training, mock):
    pages = [[{**IMG, "id": f"i{n}"} for n in range(start, stop)] for start, stop in ((0, 3), (3, 6), (6, 7))]
    for page in pages:
        mock.add("GET", f"{B}/projects/{P}/images", payload=page)
    ids = [image.id async for image in training.iter_images(P, page_size=3)]
    assert ids == [f"i{n}" for n in range(7)]
    assert [c.query for c in mock.calls] == [
        {"taggingStatus": "All", "take": "3", "skip": str(skip)} for skip in (0, 3, 6)
    ]
    with pytest.raises(ValueError):
        [i async for i in training.iter_images(P, page_size=257)]


async def test_delete_images_needs_ids_or_all(training):
    with pytest.raises(ValueError):
        await training.delete_images(P)


async def test_path_segments_are_encoded(training, mock):
    mock.add("GET", f"{B}/projects/a%2Fb/tags/t%20x", payload=TAG)
    await training.get_tag("a/b", "t x")
    assert mock.last.url.raw_path == f"{B}/projects/a%2Fb/tags/t%20x"
