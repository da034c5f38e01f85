"""What the recorded real service does and a spec reader would not expect (issue 13, item 3), and the
emulator's own safety (signed expiring URIs, timeouts, body limit: issue 17)."""

from __future__ import annotations

import io
import random
import re
import socket
import time

import aiohttp
import anyio
import pytest
from PIL import Image

from cvbulk.emulator import TIER_LATENCY, Emulator, EmulatorConfig, Latency

from ._helpers import Api, jpeg, multipart, wait_trained

pytestmark = pytest.mark.timeout(60)
FAST = dict(latency=Latency(), training_seconds=0.2)


@pytest.fixture
async def api():
    async with Emulator(EmulatorConfig(**FAST)) as emu, aiohttp.ClientSession() as session:
        yield Api(session, emu, version="v3.4-preview")


async def _trained(api: Api, publish: bool = True) -> tuple[str, dict]:
    pid = (await api.project("semantics"))["id"]
    for n, name in enumerate(("a", "b")):
        tag = await api.tag(pid, name)
        await api.upload(pid, [(f"{name}{i}.jpg", jpeg(100 * n + i, noise=True)) for i in range(5)], [tag["id"]])
    _, it = await api.call("POST", f"/projects/{pid}/train")
    it = await wait_trained(api, pid, it)
    if publish:
        await api.call("POST", f"/projects/{pid}/iterations/{it['id']}/publish",
                       params={"publishName": "pub", "predictionId": api.emu.prediction_resource_id})
    return pid, it


async def test_service_headers_on_every_answer_and_no_content_type_on_204(api):
    pid = (await api.project())["id"]
    base = api.emu.endpoint
    answers = []
    async with api.s.get(f"{base}//customvision/v3.4-preview/training/projects", headers=api.th) as resp:
        answers.append(resp)  # the .NET SDK's double slash is accepted, as by the service
        assert resp.status == 200
    async with api.s.get(f"{base}/customvision/v3.3/training/projects", headers={"Training-Key": "no"}) as resp:
        answers.append(resp)
        assert resp.status == 401
    async with api.s.get(f"{base}/customvision/v1.2/Training/projects", headers=api.th) as resp:
        answers.append(resp)
        assert resp.status == 404  # an API version the service no longer serves
    async with api.s.delete(f"{api.t}/projects/{pid}", headers=api.th) as resp:
        answers.append(resp)
        assert resp.status == 204 and "Content-Type" not in resp.headers and await resp.read() == b""
    for resp in answers:
        assert re.fullmatch(r"[0-9a-f-]{36}", resp.headers["apim-request-id"])
        assert resp.headers["Request-Id"] == resp.headers["apim-request-id"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_defaults_and_nulls_as_recorded(api):
    project = await api.project("defaults")
    assert project["settings"]["classificationType"] == "Multilabel"
    assert project["settings"]["detectionParameters"] is None
    assert len(project["settings"]["imageProcessingSettings"]["augmentationMethods"]) == 7
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", project["created"])  # 7 digits, as .NET
    tag = await api.tag(project["id"], "t")
    assert tag["description"] is None
    _, body = await api.upload(project["id"], [("u.jpg", jpeg(1))])
    assert "tags" not in body["images"][0]["image"]
    _, domains = await api.call("GET", "/domains")
    compact = next(d for d in domains if d["name"] == "General (compact)" and d["type"] == "Classification")
    assert "ONNX" in compact["exportablePlatforms"] and compact["modelInformation"]["estimatedModelSizeInMegabytes"]
    assert all("exportablePlatforms" in d and "modelInformation" in d for d in domains)


async def test_imported_copies_of_a_taken_name_are_renamed_as_the_service_does(api):
    first = await api.project("twin")
    _, export = await api.call("GET", f"/projects/{first['id']}/export")
    names = [(await api.call("POST", "/projects/import", params={"token": export["token"]}))[1]["name"]
             for _ in range(2)]
    assert names == ["twin (1)", "twin (2)"]


async def test_filter_selects_by_metadata_and_refuses_what_it_cannot_read(api):
    pid = (await api.project())["id"]
    for i, (kind, size) in enumerate((("cat", "s"), ("cat", "l"), ("dog", "s"))):
        files = {"images": [{"name": f"{i}.jpg", "contents": __import__("base64").b64encode(jpeg(i)).decode()}],
                 "metadata": {"kind": kind, "size": size}}
        await api.call("POST", f"/projects/{pid}/images/files", json=files)
    await api.upload(pid, [("none.jpg", jpeg(9))])

    async def select(expr: str) -> tuple[int, int]:
        _, found = await api.call("GET", f"/projects/{pid}/images", params={"$filter": expr})
        _, count = await api.call("GET", f"/projects/{pid}/images/count", params={"$filter": expr})
        assert len(found) == count
        return len(found), count

    assert await select("kind eq 'cat'") == (2, 2)
    assert await select("metadata=kind eq 'cat' and size ne 'l'") == (1, 1)
    assert await select("kind eq 'dog' or size eq 'l'") == (2, 2)
    assert await select("kind ne 'cat'") == (2, 2)  # the dog and the image without metadata
    for bad in ("kind gt 'cat'", "kind eq cat", "startswith(kind, 'c')", "kind eq 'cat' and"):
        _, body = await api.call("GET", f"/projects/{pid}/images", params={"$filter": bad}, expect=400)
        assert "$filter" in body["message"]


async def test_training_is_visible_then_completed_and_validation_as_the_service(api):
    pid, it = await _trained(api, publish=False)
    assert it["status"] == "Completed" and it["domainId"] and it["classificationType"] == "Multilabel"
    assert it["customBaseModelInfo"] is None and it["trainingErrorDetails"] is None and it["exportableTo"] is None
    async with api.s.get(f"{api.emu.endpoint}/customvision/v3.2/training/projects/{pid}/iterations/{it['id']}",
                         headers=api.th) as resp:
        v32 = await resp.json()
    assert v32["exportableTo"] == [] and "customBaseModelInfo" not in v32
    publish = f"/projects/{pid}/iterations/{it['id']}/publish"
    _, body = await api.call("POST", publish, params={"publishName": "p", "predictionId": "not-a-resource"},
                             expect=400)
    assert body["code"] == "BadRequestInvalidPublishTarget"
    await api.call("POST", publish, params={"publishName": "p", "predictionId": api.emu.prediction_resource_id})
    _, body = await api.call("DELETE", f"/projects/{pid}", expect=400)  # published: refused
    assert "unpublish" in body["message"]
    await api.call("DELETE", publish, expect=204)
    await api.call("DELETE", f"/projects/{pid}", expect=204)


def _big_png(megabytes: float) -> bytes:
    side = int((megabytes * 1024 * 1024 / 3) ** 0.5) + 1
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(5).randbytes(side * side * 3)).save(out, "PNG",
                                                                                        compress_level=0)
    return out.getvalue()


async def test_prediction_id_is_the_request_id_and_quick_tests_take_6_mb(api):
    pid, _it = await _trained(api)
    big = _big_png(5)
    assert 4 * 1024 * 1024 < len(big) < 6 * 1024 * 1024
    async with api.s.post(f"{api.t}/projects/{pid}/quicktest/image", headers=api.th,
                          data=multipart([("big.png", big)])) as resp:
        assert resp.status == 200, await resp.text()
        result = await resp.json()
        assert result["id"] == resp.headers["apim-request-id"]
        assert all(p["tagType"] == "Regular" for p in result["predictions"])
    url = f"{api.p}/{pid}/classify/iterations/pub/image"
    async with api.s.post(url, headers=api.ph, data=multipart([("big.png", big)])) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "BadRequestImageSizeBytes"  # 4 MB there
    async with api.s.post(url, headers=api.ph, data=jpeg(3)) as resp:
        result = await resp.json()
        assert result["id"] == resp.headers["apim-request-id"] and result["predictions"][0]["tagType"] == "Regular"
    _, found = await api.call("POST", f"/projects/{pid}/predictions/query", json={"maxCount": 0})
    token = found["token"]
    assert set(token) == {"session", "continuation", "maxCount", "orderBy", "tags", "iterationId", "startTime",
                          "endTime", "application"}
    assert len(found["results"]) == 2


async def test_import_goes_importing_then_succeeded_with_its_iterations(api):
    pid, it = await _trained(api, publish=False)
    _, export = await api.call("GET", f"/projects/{pid}/export")
    assert export["iterationCount"] == 1 and export["token"].startswith(api.emu.storage_endpoint + "/")
    _, copy = await api.call("POST", "/projects/import", params={"token": export["token"]})
    assert copy["status"] == "Importing" and copy["name"] == "semantics (1)"
    with anyio.fail_after(20):
        while copy["status"] == "Importing":
            await anyio.sleep(0.05)  # polling, as a client does
            _, copy = await api.call("GET", f"/projects/{copy['id']}")
    assert copy["status"] == "Succeeded"
    _, iterations = await api.call("GET", f"/projects/{copy['id']}/iterations")
    assert [(i["name"], i["status"]) for i in iterations] == [(it["name"], "Completed")]
    _, tags = await api.call("GET", f"/projects/{copy['id']}/tags")
    assert sorted(t["name"] for t in tags) == ["a", "b"]
    # a token altered or of another emulator's secret is refused
    bad = export["token"].replace("sig=", "sig=x")
    _, body = await api.call("POST", "/projects/import", params={"token": bad}, expect=400)
    assert body["code"] == "BadRequestInvalidImportToken"


async def test_image_uris_are_signed_bound_to_their_project_and_expire_like_azure_storage():
    config = EmulatorConfig(**FAST)
    async with Emulator(config) as emu, aiohttp.ClientSession() as session:
        api = Api(session, emu)
        a, b = (await api.project("a"))["id"], (await api.project("b"))["id"]
        _, body = await api.upload(a, [("x.jpg", jpeg(7))])
        uri = body["images"][0]["image"]["originalImageUri"]
        async with session.get(uri) as resp:
            assert resp.status == 200 and await resp.read() == jpeg(7)
        async with session.get(uri.replace(a, b)) as resp:  # another project's path: the signature fails
            assert resp.status == 403 and b"<Code>AuthenticationFailed</Code>" in await resp.read()
        head, sig, sha = uri.rsplit("/", 2)
        async with session.get(f"{head}/{sig[::-1]}/{sha}") as resp:  # a signature altered
            assert resp.status == 403
    async with Emulator(EmulatorConfig(url_ttl_seconds=0.001, **FAST)) as emu, aiohttp.ClientSession() as session:
        api = Api(session, emu)
        pid = (await api.project())["id"]
        _, body = await api.upload(pid, [("x.jpg", jpeg(7))])
        async with session.get(body["images"][0]["image"]["thumbnailUri"]) as resp:
            text = await resp.text()
            assert resp.status == 403 and resp.content_type == "application/xml"
            assert "<Code>AuthenticationFailed</Code>" in text and "Signed expiry time" in text


async def test_tiers_play_the_service_latency_unless_told_otherwise():
    assert EmulatorConfig(tier="S0").effective_latency == TIER_LATENCY["S0"]
    assert EmulatorConfig(tier="F0", latency=Latency()).effective_latency == Latency()
    assert EmulatorConfig().effective_latency == Latency()  # unlimited stays instant
    async with Emulator(EmulatorConfig(tier="F0")) as emu, aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(f"{emu.endpoint}/customvision/v3.3/training/domains",
                               headers={"Training-Key": emu.training_key}) as resp:
            assert resp.status == 200
        assert time.monotonic() - started >= TIER_LATENCY["F0"].per_request


async def test_request_body_limit_answers_413():
    async with Emulator(EmulatorConfig(max_body_bytes=1024 * 1024, **FAST)) as emu, \
            aiohttp.ClientSession() as session:
        api = Api(session, emu)
        pid = (await api.project())["id"]
        async with session.post(f"{api.t}/projects/{pid}/images", headers=api.th, data=b"\xff\xd8" + b"0" * 2_000_000,
                                ) as resp:
            assert resp.status == 413


def _raw(port: int, data: bytes) -> bytes:
    """Send bytes and read until the server closes the connection (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        return got


async def test_half_open_connections_are_closed():
    config = EmulatorConfig(header_timeout=0.3, read_timeout=0.3, **FAST)
    async with Emulator(config) as emu:
        # a request head that never ends: the connection is closed, no answer
        started = time.monotonic()
        got = await anyio.to_thread.run_sync(_raw, emu.port, b"GET /customvision/v3.3/training/domains HTTP/1.1\r\n")
        assert got == b"" and time.monotonic() - started < 8
        # a body that never arrives: refused, not waited for
        head = (f"POST /customvision/v3.3/training/projects/{'0' * 8}-0000-0000-0000-{'0' * 12}/images/files HTTP/1.1"
                f"\r\nHost: x\r\nTraining-Key: {emu.training_key}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{\"images\"").encode()
        started = time.monotonic()
        await anyio.to_thread.run_sync(_raw, emu.port, head)
        assert time.monotonic() - started < 8
