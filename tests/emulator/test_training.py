"""Iterations: validation, background training, performance, publishing, quick tests, predictions,
export and import."""

from __future__ import annotations

import aiohttp
import pytest

from cvbulk.emulator import Emulator

from ._helpers import Api, classification_project, jpeg, multipart, wait_trained

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api():
    async with Emulator() as emu, aiohttp.ClientSession() as session:
        yield Api(session, emu)


async def test_training_validation(api, samples):
    pid = (await api.project())["id"]
    a, b = (await api.tag(pid, "a"))["id"], (await api.tag(pid, "b"))["id"]
    _, body = await api.call("POST", f"/projects/{pid}/train", expect=400)
    assert body["code"] == "BadRequestTrainingValidationFailed"
    await api.upload(pid, [(str(i), jpeg(i)) for i in range(5)], [a])
    await api.upload(pid, [(str(i), jpeg(50 + i)) for i in range(3)], [b])
    _, body = await api.call("POST", f"/projects/{pid}/train", expect=400)
    assert body["code"] == "BadRequestTrainingValidationFailed" and "b" in body["message"]


async def test_train_publish_predict_and_quick_test(api, samples):
    pid, tags = await classification_project(api, samples)
    _, it = await api.call("POST", f"/projects/{pid}/train")
    # as recorded on the service: right after train, Training with no domain / type / trainedAt yet
    assert it["status"] == "Training" and it["projectId"] == pid and it["classificationType"] is None
    assert it["domainId"] is None and "trainedAt" not in it
    _, body = await api.call("POST", f"/projects/{pid}/train", expect=400)
    assert body["code"] == "BadRequestTrainingAlreadyInProgress"
    it = await wait_trained(api, pid, it)
    assert it["status"] == "Completed" and it["trainedAt"] and it["classificationType"] == "Multilabel"

    _, body = await api.call("POST", f"/projects/{pid}/train", expect=400)
    assert body["code"] == "BadRequestTrainingNotNeeded"

    _, perf = await api.call("GET", f"/projects/{pid}/iterations/{it['id']}/performance")
    assert {t["name"] for t in perf["perTagPerformance"]} == set(tags)
    assert all(0.0 <= perf[k] <= 1.0 for k in ("precision", "recall", "averagePrecision"))
    _, iteration_tags = await api.call("GET", f"/projects/{pid}/tags", params={"iterationId": it["id"]})
    assert {t["name"] for t in iteration_tags} == set(tags)

    test_image = (samples / "ImageClassification" / "Images" / "Test" / "test_image.jpg").read_bytes()
    _, quick = await api.call("POST", f"/projects/{pid}/quicktest/image", data=multipart([("t.jpg", test_image)]))
    assert quick["predictions"][0]["tagName"] == "Hemlock" and quick["predictions"][0]["tagType"] == "Regular"

    # publish under a name; prediction answers from that name only
    pub = f"/projects/{pid}/iterations/{it['id']}/publish"
    _, ok = await api.call("POST", pub, params={"publishName": "trees", "predictionId": api.emu.prediction_resource_id})
    assert ok is True
    _, body = await api.call("DELETE", f"/projects/{pid}/iterations/{it['id']}", expect=400)
    assert body["code"] == "BadRequestIterationIsPublished"
    _, [listed] = await api.call("GET", f"/projects/{pid}/iterations")
    assert listed["publishName"] == "trees" and listed["originalPublishResourceId"] == api.emu.prediction_resource_id

    _, [stored] = await api.call("GET", f"/projects/{pid}/images", params={"take": "1", "tagIds": tags["Hemlock"]})
    base = f"{api.p}/{pid}/classify/iterations/trees"
    calls = [
        ("/image", {"data": multipart([("t.jpg", test_image)])}),
        ("/image/nostore", {"data": test_image, "headers": {"Content-Type": "application/octet-stream"}}),
        ("/url", {"json": {"url": stored["originalImageUri"]}}),
        ("/url/nostore", {"json": {"url": stored["originalImageUri"]}}),
    ]
    for suffix, kw in calls:
        headers = {**api.ph, **kw.pop("headers", {})}
        async with api.s.post(base + suffix, headers=headers, **kw) as resp:
            assert resp.status == 200, await resp.text()
            result = await resp.json()
        assert result["project"] == pid and result["iteration"] == it["id"]
        assert result["predictions"][0]["tagName"] == "Hemlock", suffix
        assert result["predictions"][0]["tagType"] == "Regular"  # as recorded on the service
    async with api.s.post(f"{api.p}/{pid}/detect/iterations/trees/image", headers=api.ph, data=test_image) as resp:
        assert resp.status == 400

    # the store variants (and the quick test, store=true by default) kept their images and results
    query = f"/projects/{pid}/predictions/query"
    _, found = await api.call("POST", query, json={"orderBy": "Oldest"})
    assert len(found["results"]) == 3 and found["token"]["continuation"] is None
    assert found["results"][1]["predictions"][0]["tagName"] == "Hemlock"
    async with api.s.get(found["results"][0]["originalImageUri"]) as resp:
        assert await resp.read() == test_image
    _, page = await api.call("POST", query, json={"maxCount": 2})
    assert len(page["results"]) == 2 and page["token"]["continuation"] == "2"
    _, hemlock = await api.call("POST", query, json={"tags": [{"id": tags["Hemlock"], "minThreshold": 0.5}]})
    assert len(hemlock["results"]) == 3
    await api.call("DELETE", f"/projects/{pid}/predictions", params={"ids": found["results"][0]["id"]}, expect=204)
    _, left = await api.call("POST", query, json={})
    assert len(left["results"]) == 2

    await api.call("DELETE", pub, expect=204)
    async with api.s.post(base + "/image", headers=api.ph, data=test_image) as resp:
        assert resp.status == 404 and (await resp.json())["code"] == "NotFoundIteration"

    _, renamed = await api.call("PATCH", f"/projects/{pid}/iterations/{it['id']}", json={"name": "first"})
    assert renamed["name"] == "first"
    _, it2 = await api.call("POST", f"/projects/{pid}/train", params={"forceTrain": "true"})
    it2 = await wait_trained(api, pid, it2)
    await api.call("DELETE", f"/projects/{pid}/iterations/{it['id']}", expect=204)
    _, remaining = await api.call("GET", f"/projects/{pid}/iterations")
    assert [i["id"] for i in remaining] == [it2["id"]]


async def test_export_and_import_to_the_same_and_another_emulator(api, samples):
    pid = (await api.project("source"))["id"]
    tag = (await api.tag(pid, "t"))["id"]
    await api.upload(pid, [("a", jpeg(1)), ("b", jpeg(2))], [tag])
    _, export = await api.call("GET", f"/projects/{pid}/export")
    assert export["imageCount"] == 2 and export["tagCount"] == 1 and export["token"]

    _, copy = await api.call("POST", "/projects/import", params={"token": export["token"], "name": "copy"})
    assert copy["name"] == "copy" and copy["id"] != pid
    async with Emulator() as other, aiohttp.ClientSession() as s:
        remote = Api(s, other)
        _, imported = await remote.call("POST", "/projects/import", params={"token": export["token"]})
        assert imported["name"] == "source"
        _, images = await remote.call("GET", f"/projects/{imported['id']}/images", params={"orderBy": "Oldest"})
        assert [i["tags"][0]["tagName"] for i in images] == ["t", "t"]
        async with s.get(images[0]["originalImageUri"]) as resp:
            assert await resp.read() == jpeg(1)
        _, body = await remote.call("POST", "/projects/import", params={"token": "bad!"}, expect=400)
        assert body["code"] == "BadRequestInvalidImportToken"


async def test_a_training_cut_by_a_stop_resumes_at_the_next_start(tmp_path, samples, monkeypatch):
    import threading

    from cvbulk.emulator import EmulatorConfig, _models

    release = threading.Event()
    real_train = _models._fit

    def held_train(*args):
        release.wait(20)  # the first emulator stops while its training is still running
        return real_train(*args)

    config = EmulatorConfig(data_dir=tmp_path / "data")
    monkeypatch.setattr(_models, "_fit", held_train)
    try:
        async with Emulator(config) as emu, aiohttp.ClientSession() as s:
            api = Api(s, emu)
            pid, _ = await classification_project(api, samples)
            _, it = await api.call("POST", f"/projects/{pid}/train")
        monkeypatch.setattr(_models, "_fit", real_train)
        async with Emulator(config) as emu, aiohttp.ClientSession() as s:
            api = Api(s, emu)
            _, again = await api.call("GET", f"/projects/{pid}/iterations/{it['id']}")
            assert again["status"] == "Training"
            done = await wait_trained(api, pid, again)
            assert done["status"] == "Completed"
    finally:
        release.set()
