"""Core behaviour of the emulator's server: paths, auth, errors, batches, paging, persistence."""

from __future__ import annotations

import aiohttp
import pytest

from cvbulk.emulator import Emulator, EmulatorConfig, Latency

from ._helpers import Api, jpeg, multipart, png

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def api():
    async with Emulator() as emu, aiohttp.ClientSession() as session:
        yield Api(session, emu)


@pytest.mark.parametrize("version", ["v3.0", "v3.1", "v3.2", "v3.3", "v3.4-preview"])
@pytest.mark.parametrize("segment", ["training", "Training"])
async def test_training_paths_and_versions(version, segment):
    async with Emulator() as emu, aiohttp.ClientSession() as s:
        url = f"{emu.endpoint}/customvision/{version}/{segment}/domains"
        async with s.get(url, headers={"training-key": emu.training_key}) as resp:  # header name in any case
            assert resp.status == 200
            domains = await resp.json()
    kinds = {(d["type"], d["name"]) for d in domains}
    assert ("ObjectDetection", "General") in kinds and ("Classification", "General [A1]") in kinds
    assert ("ObjectDetection", "Products on Shelves") in kinds and ("Classification", "Food") in kinds


async def test_wrong_or_missing_key_gets_gateway_401(api):
    for headers in ({"Training-Key": "wrong"}, {}, {"Prediction-Key": api.emu.prediction_key}):
        async with api.s.get(api.t + "/projects", headers=headers) as resp:
            assert resp.status == 401
            body = await resp.json()
    assert body["error"]["code"] == "401"
    assert body["error"]["message"].startswith("Access denied due to invalid subscription key")
    async with api.s.post(api.p + "/00000000-0000-0000-0000-000000000000/classify/iterations/x/image",
                          headers={"Prediction-Key": api.emu.training_key}, data=b"x") as resp:
        assert resp.status == 401


async def test_errors_use_the_spec_codes(api):
    _, body = await api.call("GET", "/projects/6a2b1a7d-0000-4000-8000-000000000000", expect=404)
    assert body["code"] == "NotFoundProject" and body["message"]
    _, body = await api.call("GET", "/projects/not-a-uuid", expect=400)
    assert body["code"] == "BadRequestInvalidIds"
    _, body = await api.call("POST", "/projects", expect=400)
    assert body["code"] == "BadRequestRequiredParamIsNull"
    pid = (await api.project())["id"]
    await api.tag(pid, "a")
    _, body = await api.call("POST", f"/projects/{pid}/tags", params={"name": "A"}, expect=400)
    assert body["code"] == "BadRequestTagNameNotUnique"
    _, body = await api.call("GET", f"/projects/{pid}/tags/6a2b1a7d-0000-4000-8000-000000000000", expect=404)
    assert body["code"] == "NotFoundTag"
    _status, body = await api.call("GET", "/nowhere", expect=404)
    assert body["error"]["code"] == "404"


async def test_projects_and_tags_crud(api):
    od = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
    p = await api.project("detector", domainId=od, description="d")
    assert p["settings"]["domainId"] == od and p["settings"]["classificationType"] is None
    c = await api.project("multi", classificationType="Multilabel")
    _, projects = await api.call("GET", "/projects")
    assert {x["id"] for x in projects} == {p["id"], c["id"]}
    _, patched = await api.call("PATCH", f"/projects/{c['id']}", json={"name": "renamed", "description": "x"})
    assert patched["name"] == "renamed" and patched["settings"]["classificationType"] == "Multilabel"
    tag = await api.tag(c["id"], "cat")
    _, tag2 = await api.call("PATCH", f"/projects/{c['id']}/tags/{tag['id']}", json={"name": "kitten"})
    assert tag2 == {**tag, "name": "kitten"}
    await api.call("DELETE", f"/projects/{c['id']}/tags/{tag['id']}", expect=204)
    _, tags = await api.call("GET", f"/projects/{c['id']}/tags")
    assert tags == []
    await api.call("DELETE", f"/projects/{c['id']}", expect=204)
    await api.call("GET", f"/projects/{c['id']}", expect=404)


async def test_mixed_batch_answers_207_with_a_status_per_image(api):
    pid = (await api.project())["id"]
    tag = await api.tag(pid, "t")
    good, dup = jpeg(1), jpeg(2)
    await api.upload(pid, [("dup.jpg", dup)], [tag["id"]])
    images = [
        ("good.jpg", good),
        ("dup.jpg", dup),
        ("text.txt", b"not an image at all"),
        ("wide.png", png((10241, 1))),
        ("huge.jpg", b"\xff\xd8" + b"\0" * (6 * 1024 * 1024 + 1)),
    ]
    _status, body = await api.upload(pid, images, [tag["id"]], expect=207)
    assert body["isBatchSuccessful"] is False
    statuses = [(i["sourceUrl"], i["status"]) for i in body["images"]]
    assert statuses == [('"good.jpg"', "OK"), ('"dup.jpg"', "OKDuplicate"), ('"text.txt"', "ErrorImageFormat"),
                        ('"wide.png"', "ErrorImageSize"), ('"huge.jpg"', "ErrorImageSize")]
    first = body["images"][0]["image"]
    # as recorded on the service: a create result names no tag (tagName null)
    assert first["tags"][0]["tagName"] is None and first["tags"][0]["tagId"] == tag["id"]
    assert first["width"] == 64 and first["height"] == 48
    assert "image" not in body["images"][2]
    _, count = await api.call("GET", f"/projects/{pid}/images/count")
    assert count == 2
    # the duplicate answers with the image already there, and its URIs serve the bytes
    dup_image = body["images"][1]["image"]
    async with api.s.get(dup_image["originalImageUri"]) as resp:
        assert resp.status == 200 and await resp.read() == dup
    for uri in (dup_image["resizedImageUri"], dup_image["thumbnailUri"]):
        async with api.s.get(uri) as resp:
            assert resp.status == 200 and resp.content_type == "image/jpeg"


async def test_batch_limits(api):
    pid = (await api.project())["id"]
    tags = [(await api.tag(pid, f"t{i}"))["id"] for i in range(21)]
    images = [(f"i{i}.jpg", jpeg(i)) for i in range(65)]
    _, body = await api.upload(pid, images, expect=400)
    assert body["code"] == "BadRequestImageBatch"
    _, body = await api.upload(pid, images[:1], tags, expect=400)
    assert body["code"] == "BadRequestExceededBatchSize"
    _, body = await api.upload(pid, images[:64], tags[:20])  # 64 parts all named imageData: fine
    assert len(body["images"]) == 64 and all(i["status"] == "OK" for i in body["images"])
    assert len(body["images"][0]["image"]["tags"]) == 20
    files = {"images": [{"name": "x", "contents": ""}] * 65}
    _, body = await api.call("POST", f"/projects/{pid}/images/files", json=files, expect=400)
    assert body["code"] == "BadRequestImageBatch"


async def test_octet_stream_files_urls_regions_and_tags(api):
    od = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
    pid = (await api.project("od", domainId=od))["id"]
    fork = (await api.tag(pid, "fork"))["id"]
    knife = (await api.tag(pid, "knife"))["id"]
    _, body = await api.call("POST", f"/projects/{pid}/images", data=jpeg(10),
                             headers={"Content-Type": "application/octet-stream"})
    octet_image = body["images"][0]["image"]
    assert body["images"][0]["status"] == "OK" and "tags" not in octet_image  # untagged: no tags key
    import base64

    region = {"tagId": fork, "left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}
    files = {"images": [{"name": "a.jpg", "contents": base64.b64encode(jpeg(11)).decode(), "regions": [region]},
                        {"name": "b.jpg", "contents": base64.b64encode(jpeg(12)).decode(), "tagIds": [knife]}]}
    _, body = await api.call("POST", f"/projects/{pid}/images/files", json=files)
    a, b = (i["image"] for i in body["images"])
    assert a["regions"][0]["tagName"] == "fork" and a["regions"][0]["left"] == 0.1
    assert b["tags"][0]["tagId"] == knife
    # URLs: the emulator's own image URIs (one already in the project, so OKDuplicate) and a bad one
    urls = {"images": [{"url": octet_image["originalImageUri"]}, {"url": api.emu.endpoint + "/emulator/blobs/" + "0" * 64},
                       {"url": "ftp://example.invalid/x.jpg"}]}
    _status, body = await api.call("POST", f"/projects/{pid}/images/urls", json=urls, expect=207)
    assert [i["status"] for i in body["images"]] == ["OKDuplicate", "ErrorSource", "ErrorSource"]
    # regions and tags on an existing image
    entries = {"regions": [{"imageId": octet_image["id"], **region}, {"imageId": octet_image["id"], **region}]}
    _, body = await api.call("POST", f"/projects/{pid}/images/regions", json=entries, expect=207)
    assert len(body["created"]) == 1 and len(body["duplicated"]) == 1 and body["created"][0]["regionId"]
    pairs = {"tags": [{"imageId": octet_image["id"], "tagId": knife}]}
    _, body = await api.call("POST", f"/projects/{pid}/images/tags", json=pairs)
    assert body["created"] == pairs["tags"]
    await api.call("DELETE", f"/projects/{pid}/images/tags",
                   params={"imageIds": octet_image["id"], "tagIds": knife}, expect=204)
    _, [img] = await api.call("GET", f"/projects/{pid}/images/id", params={"imageIds": octet_image["id"]})
    # the service lists a region's tag among the image's tags too (recorded, DownloadRegions)
    assert [t["tagId"] for t in img["tags"]] == [fork] and len(img["regions"]) == 1


async def test_paging_filters_counts_and_delete(api):
    pid = (await api.project())["id"]
    red = (await api.tag(pid, "red"))["id"]
    blue = (await api.tag(pid, "blue"))["id"]
    await api.upload(pid, [(f"r{i}", jpeg(100 + i)) for i in range(5)], [red])
    await api.upload(pid, [(f"b{i}", jpeg(200 + i)) for i in range(3)], [blue])
    await api.call("POST", f"/projects/{pid}/images", data=multipart([("u", jpeg(300))]))
    get = lambda path, **q: api.call("GET", f"/projects/{pid}/images{path}", params=q)  # noqa: E731
    assert (await get("/count"))[1] == 9
    assert (await get("/tagged/count"))[1] == 8
    assert (await get("/untagged/count"))[1] == 1
    assert (await get("/count", tagIds=blue))[1] == 3
    assert (await get("/count", taggingStatus="Untagged"))[1] == 1
    newest = (await get("", take="4"))[1]
    oldest = (await get("", take="4", orderBy="Oldest"))[1]
    assert len(newest) == 4 and newest[0]["id"] != oldest[0]["id"]
    all_ids = [i["id"] for i in (await get("/tagged", take="256", orderBy="Oldest"))[1]]
    paged = [i["id"] for s in range(0, 8, 3) for i in (await get("/tagged", take="3", skip=str(s), orderBy="Oldest"))[1]]
    assert paged == all_ids and len(all_ids) == 8
    assert len((await get("/untagged"))[1]) == 1
    assert {i["tags"][0]["tagId"] for i in (await get("/tagged", tagIds=red))[1]} == {red}
    await api.call("GET", f"/projects/{pid}/images", params={"take": "257"}, expect=400)
    await api.call("DELETE", f"/projects/{pid}/images", params={"imageIds": ",".join(all_ids[:2])}, expect=204)
    assert (await get("/count"))[1] == 7
    await api.call("DELETE", f"/projects/{pid}/images", params={"allImages": "true"}, expect=204)
    assert (await get("/count"))[1] == 0


async def test_tier_limits_for_projects_tags_and_images(monkeypatch):
    from cvbulk.emulator import _config

    small = _config.TierLimits("F0", None, None, None, None, 1, 2, 3, 20)
    monkeypatch.setitem(_config.TIERS, "F0", small)
    async with Emulator(EmulatorConfig(tier="F0", latency=Latency())) as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        pid = (await api.project())["id"]
        _, body = await api.call("POST", "/projects", params={"name": "second"}, expect=400)
        assert body["code"] == "BadRequestExceedProjectLimit"
        await api.tag(pid, "a")
        await api.tag(pid, "b")
        _, body = await api.call("POST", f"/projects/{pid}/tags", params={"name": "c"}, expect=400)
        assert body["code"] == "BadRequestExceedTagPerProjectLimit"
        _, body = await api.upload(pid, [(f"{i}", jpeg(i)) for i in range(4)], expect=207)
        assert [i["status"] for i in body["images"]] == ["OK", "OK", "OK", "ErrorLimitExceed"]


async def test_everything_survives_a_restart(tmp_path):
    config = EmulatorConfig(data_dir=tmp_path / "data")
    async with Emulator(config) as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        pid = (await api.project("kept"))["id"]
        tag = (await api.tag(pid, "t"))["id"]
        _, body = await api.upload(pid, [("a", jpeg(1)), ("b", jpeg(2))], [tag])
        before = [i["image"]["id"] for i in body["images"]]
    async with Emulator(config) as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        _, projects = await api.call("GET", "/projects")
        assert [p["name"] for p in projects] == ["kept"]
        _, images = await api.call("GET", f"/projects/{pid}/images", params={"orderBy": "Oldest"})
        assert [i["id"] for i in images] == before and images[0]["tags"][0]["tagId"] == tag
        async with s.get(images[1]["originalImageUri"]) as resp:
            assert await resp.read() == jpeg(2)
    assert (tmp_path / "data" / "emulator.sqlite3").exists()


async def test_temporary_data_dir_is_removed():
    async with Emulator() as emu:
        path = emu.data_dir
        assert path.exists()
    assert not path.exists()


async def test_per_image_tag_rules_in_a_files_batch(api, monkeypatch):
    import base64

    from cvbulk.emulator import _db

    monkeypatch.setattr(_db, "MAX_TAGS_PER_IMAGE", 2)
    pid = (await api.project())["id"]
    a, b, c = [(await api.tag(pid, n))["id"] for n in "abc"]
    _, negative = await api.call("POST", f"/projects/{pid}/tags", params={"name": "none", "type": "Negative"})

    def entry(seed: int, tags: list[str]) -> dict:
        return {"name": f"{seed}.jpg", "contents": base64.b64encode(jpeg(seed)).decode(), "tagIds": tags}

    batch = {"images": [entry(1, [a, b]), entry(2, [a, b, c]), entry(3, [a, negative["id"]]),
                        {"name": "bad", "contents": "!!!not base64!!!"}]}
    _, body = await api.call("POST", f"/projects/{pid}/images/files", json=batch, expect=207)
    assert [i["status"] for i in body["images"]] == [
        "OK", "ErrorTagLimitExceed", "ErrorNegativeAndRegularTagOnSameImage", "ErrorImageFormat"]
