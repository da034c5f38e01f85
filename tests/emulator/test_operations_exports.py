"""ExportIteration / GetExports (Exporting then Done, a downloadable package of the emulator's own
model) and GetArtifact (stored files by the URI or path the API gave)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from ._ops_helpers import TREES, Client, Trees, trained_trees, upload

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def c(emulator_thread) -> Client:
    return Client(emulator_thread)


@pytest.fixture(scope="module")
def trees(c) -> Trees:
    return trained_trees(c)


def _poll_done(c: Client, path: str) -> tuple[list[dict], list[str]]:
    seen = []
    deadline = time.monotonic() + 30
    while True:
        exports = c.json("GET", path)
        seen.append(exports[0]["status"])
        if exports[0]["status"] != "Exporting":
            return exports, seen
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling, as a client does


def test_export_goes_exporting_then_done_with_a_package_that_says_what_it_is(c, trees):
    path = f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/export"
    started = c.json("POST", path, params={"platform": "TensorFlow", "flavor": "TensorFlowLite"})
    assert started == {"platform": "TensorFlow", "status": "Exporting", "downloadUri": None,
                       "flavor": "TensorFlowLite", "newerVersionAvailable": False}
    again = c.call("POST", path, 400, params={"platform": "TensorFlow", "flavor": "TensorFlowLite"}).json()
    assert again["code"] == "BadRequestExportAlreadyInProgress"
    exports, seen = _poll_done(c, path)
    assert seen[0] == "Exporting" and seen[-1] == "Done"
    export = exports[0]
    assert export["platform"] == "TensorFlow" and export["flavor"] == "TensorFlowLite"
    link = urlsplit(export["downloadUri"])
    assert link.path.endswith(trees.iteration["id"].replace("-", "") + ".TensorFlow.TensorFlowLite.zip")
    assert {"se", "sp", "sig"} <= set(parse_qs(link.query))  # signed and expiring, like a SAS URL

    package = c.s.get(export["downloadUri"], timeout=30)  # no key: the signature is the credential
    assert package.status_code == 200
    with zipfile.ZipFile(io.BytesIO(package.content)) as zf:
        assert sorted(zf.namelist()) == ["README.txt", "labels.txt", "manifest.json", "model.json"]
        readme = zf.read("README.txt").decode()
        assert "Requested platform: TensorFlow" in readme and "TensorFlowLite" in readme
        assert "NOT a TensorFlow model" in readme
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["iterationId"] == trees.iteration["id"] and manifest["platform"] == "TensorFlow"
        model = json.loads(zf.read("model.json"))
        assert model["format"] == "cvbulk-trainer/1" and model["kind"] == "Multiclass"
        assert sorted(zf.read("labels.txt").decode().split("\n")[:-1]) == ["Hemlock", "Japanese Cherry"]
    # the same package through GetArtifact, by its download URI
    artifact = c.call("GET", f"/projects/{trees.pid}/artifacts", params={"path": export["downloadUri"]})
    assert artifact.content == package.content


def test_a_second_platform_is_listed_beside_the_first(c, trees):
    path = f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/export"
    c.json("POST", path, params={"platform": "ONNX"})
    deadline = time.monotonic() + 30
    while any(e["status"] == "Exporting" for e in c.json("GET", path)):
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling, as a client does
    exports = c.json("GET", path)
    assert {(e["platform"], e["flavor"], e["status"]) for e in exports} >= {("ONNX", None, "Done")}


@pytest.mark.parametrize("params,code", [
    ({"platform": "Excel"}, "BadRequestExportValidationFailed"),
    ({"platform": "ONNX", "flavor": "Linux"}, "BadRequestExportValidationFailed"),
    ({}, "BadRequestRequiredParamIsNull"),
])
def test_invalid_exports_are_refused(c, trees, params, code):
    path = f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/export"
    assert c.call("POST", path, 400, params=params).json()["code"] == code


def test_a_non_compact_domain_cannot_be_exported(c, emulator_thread):
    pid = c.json("POST", "/projects", params={"name": "general"})["id"]
    for name, folder in (("a", "Hemlock"), ("b", "Japanese_Cherry")):
        tag = c.json("POST", f"/projects/{pid}/tags", params={"name": name})["id"]
        upload(c, pid, sorted((TREES / folder).glob("*.jpg"))[:5], [tag])
    iteration = c.wait(pid, c.json("POST", f"/projects/{pid}/train"))
    body = c.call("POST", f"/projects/{pid}/iterations/{iteration['id']}/export", 400,
                  params={"platform": "CoreML"}).json()
    assert body["code"] == "BadRequestExportValidationFailed"
    assert c.json("GET", f"/projects/{pid}/iterations/{iteration['id']}/export") == []


def test_get_artifact_serves_an_image_by_its_uri_and_by_the_service_path(c, trees):
    image = c.json("GET", f"/projects/{trees.pid}/images", params={"take": 1})[0]
    original = c.s.get(image["originalImageUri"], timeout=30).content
    by_uri = c.call("GET", f"/projects/{trees.pid}/artifacts", params={"path": image["originalImageUri"]})
    assert by_uri.headers["Content-Type"].startswith("application/octet-stream")
    assert by_uri.content == original
    thumb = c.call("GET", f"/projects/{trees.pid}/artifacts", params={"path": image["thumbnailUri"]}).content
    assert max(Image.open(io.BytesIO(thumb)).size) <= 200
    service_path = f"i-{trees.pid.replace('-', '')}/i-{image['id'].replace('-', '')}"
    assert c.call("GET", f"/projects/{trees.pid}/artifacts", params={"path": service_path}).content == original


def test_get_artifact_refuses_paths_of_other_projects_and_unknown_forms(c, trees):
    other = c.json("POST", "/projects", params={"name": "other"})["id"]
    image = c.json("GET", f"/projects/{trees.pid}/images", params={"take": 1})[0]
    foreign = c.call("GET", f"/projects/{other}/artifacts", 404, params={"path": image["originalImageUri"]})
    assert foreign.json()["code"] == "NotFound"
    odd = c.call("GET", f"/projects/{trees.pid}/artifacts", 400, params={"path": "../../etc/passwd"})
    assert odd.json()["code"] == "BadRequestInvalidArtifactUri"


def test_export_links_refuse_an_altered_signature_and_get_artifact_checks_it(c, trees):
    path = f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/export"
    c.json("POST", path, params={"platform": "CoreML"})
    deadline = time.monotonic() + 30
    while (uri := next(e["downloadUri"] for e in c.json("GET", path) if e["platform"] == "CoreML")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling, as a client does
    altered = uri[:-3] + ("AAA" if not uri.endswith("AAA") else "BBB")
    refused = c.s.get(altered, timeout=30)
    assert refused.status_code == 403 and b"<Code>AuthenticationFailed</Code>" in refused.content
    bare = c.s.get(uri.split("?")[0], timeout=30)  # no signature at all
    assert bare.status_code == 403
    # GetArtifact: the key authorises the read, but only a path the API gave (its signature intact)
    c.call("GET", f"/projects/{trees.pid}/artifacts", 404, params={"path": altered})
    image = c.json("GET", f"/projects/{trees.pid}/images", params={"take": 1})[0]
    head, sig, sha = image["originalImageUri"].rsplit("/", 2)
    c.call("GET", f"/projects/{trees.pid}/artifacts", 404, params={"path": f"{head}/{sig[::-1]}/{sha}"})


def test_expired_links_are_refused_but_get_artifact_still_reads_them(tmp_path):
    from cvbulk.emulator import EmulatorConfig, EmulatorThread, Latency

    from ._ops_helpers import COMPACT_CLASSIFICATION

    config = EmulatorConfig(url_ttl_seconds=1, training_seconds=0.1, latency=Latency(), data_dir=tmp_path)
    with EmulatorThread(config) as emu:
        c = Client(emu)
        pid = c.json("POST", "/projects", params={"name": "ttl", "domainId": COMPACT_CLASSIFICATION})["id"]
        first = sorted((TREES / "Hemlock").glob("*.jpg"))[0]
        uploaded = []
        for name, folder in (("a", "Hemlock"), ("b", "Japanese_Cherry")):
            tag = c.json("POST", f"/projects/{pid}/tags", params={"name": name})["id"]
            uploaded += upload(c, pid, sorted((TREES / folder).glob("*.jpg"))[:5], [tag])
        image_uri = uploaded[0]["originalImageUri"]  # the first Hemlock file's
        iteration = c.wait(pid, c.json("POST", f"/projects/{pid}/train"))
        path = f"/projects/{pid}/iterations/{iteration['id']}/export"
        c.json("POST", path, params={"platform": "ONNX"})
        deadline = time.monotonic() + 30
        while c.json("GET", path)[0]["status"] == "Exporting":
            assert time.monotonic() < deadline
            time.sleep(0.02)  # polling, as a client does
        model_uri = c.json("GET", path)[0]["downloadUri"]
        time.sleep(2.1)  # the 1 s lifetime (whole seconds, as Azure's se) must pass
        for uri in (image_uri, model_uri):
            expired = c.s.get(uri, timeout=30)
            assert expired.status_code == 403 and b"Signed expiry time" in expired.content
        # the Training-Key authorises GetArtifact, as the service's unsigned relative path shows
        assert c.call("GET", f"/projects/{pid}/artifacts", params={"path": image_uri}).content == first.read_bytes()
        assert c.call("GET", f"/projects/{pid}/artifacts", params={"path": model_uri}).content[:2] == b"PK"
