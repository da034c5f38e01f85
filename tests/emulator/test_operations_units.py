"""The pure parts behind the added operations: uncertainty, export package, region proposals,
held-out predictions; and what survives a restart of the emulator (exports, suggestions)."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from PIL import Image

from cvbulk.emulator import EmulatorConfig, EmulatorThread, _routes_exports
from cvbulk.emulator import _evaluation as ev
from cvbulk.emulator._blobs import BlobStore
from cvbulk.emulator._export_package import export_file_name, write_export
from cvbulk.emulator._proposals import region_proposals
from cvbulk.emulator._scoring import uncertainty

from ._ops_helpers import TREES, Client, trained_trees

pytestmark = pytest.mark.timeout(90)


def test_uncertainty_is_the_recorded_entropy_in_bits():
    # SuggestTagAndRegions.json: probabilities 0.999999762 and 2.38418579e-07 -> 5.589174179476686e-06
    got = uncertainty([{"probability": 0.999999762}, {"probability": 2.38418579e-07}])
    assert got == pytest.approx(5.589174179476686e-06, rel=1e-3)
    assert uncertainty([{"probability": 1.0}, {"probability": 0.0}]) == 0.0
    assert uncertainty([{"probability": 0.5}, {"probability": 0.5}]) == pytest.approx(1.0)


def test_export_package_names_what_it_is(tmp_path):
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"format": "cvbulk-trainer/1", "tag_ids": ["b", "a"]}))
    name = export_file_name("62c52da5-35e6-49c6-8344-756ba73a38f6", "DockerFile", "ARM")
    assert name == "62c52da535e649c68344756ba73a38f6.DockerFile.ARM.zip"
    assert export_file_name("62c52da5-35e6-49c6-8344-756ba73a38f6", "CoreML", "").endswith(".CoreML.zip")
    manifest = {"platform": "DockerFile", "flavor": "ARM", "projectId": "p", "iterationId": "i",
                "iterationName": "Iteration 1", "kind": "Multiclass", "exportedAt": "now",
                "modelFormat": "cvbulk-trainer/1", "tags": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}]}
    write_export(model, tmp_path / "out" / name, manifest)
    with zipfile.ZipFile(tmp_path / "out" / name) as zf:
        assert zf.read("labels.txt") == b"B\nA\n"  # the model's order
        readme = zf.read("README.txt").decode()
        assert "Requested platform: DockerFile" in readme and "Requested flavor:   ARM" in readme
        assert json.loads(zf.read("model.json"))["tag_ids"] == ["b", "a"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]  # no temporary file left


def _png(draw) -> bytes:
    img = Image.new("RGB", (200, 200), (240, 240, 240))
    draw(img)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_region_proposals_are_deterministic_and_empty_for_a_blank_image():
    boxed = _png(lambda img: img.paste((200, 30, 30), (20, 120, 80, 180)))
    first = region_proposals(boxed)
    assert first == region_proposals(boxed)
    confidence, box = first[0]
    assert 0.5 < confidence < 1
    assert box.left == pytest.approx(0.125, abs=0.07) and box.top == pytest.approx(0.625, abs=0.07)
    assert region_proposals(_png(lambda img: None)) == []  # nothing stands out


def test_holdout_predicts_only_images_it_did_not_train_on(tmp_path):
    blobs = BlobStore(tmp_path)
    recorded = []
    for folder, tag in (("Hemlock", "h"), ("Japanese_Cherry", "c")):
        for f in sorted((TREES / folder).glob("*.jpg"))[:5]:
            recorded.append({"sha256": blobs.put(f.read_bytes()), "tags": [tag], "regions": []})
    tags = [{"id": "h", "name": "H", "type": "Regular"}, {"id": "c", "name": "C", "type": "Regular"}]

    def held_out(records: list[dict]) -> list[dict]:
        evaluation = ev.evaluate_prepared(ev.prepare(blobs, "Multiclass", records), ["h", "c"], seed=0)
        return ev.image_performances(evaluation, tags)

    held = held_out(recorded)
    assert len(held) == 2  # 10 images of 2 tags, 5 folds: the service's recorded "2"
    assert held == held_out(recorded)
    for h in held:
        assert h["sha"] in {r["sha256"] for r in recorded}
        assert {p["tagId"] for p in h["predictions"]} == {"h", "c"}
    assert held_out(recorded[:1]) == []


def test_an_export_cut_by_a_stop_is_finished_after_the_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(_routes_exports, "EXPORT_SECONDS", 30.0)  # still Exporting when the emulator stops
    config = EmulatorConfig(data_dir=tmp_path)
    with EmulatorThread(config) as emu:
        c = Client(emu)
        trees = trained_trees(c)
        path = f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/export"
        assert c.json("POST", path, params={"platform": "CoreML"})["status"] == "Exporting"
        suggested = c.json("POST", f"/projects/{trees.pid}/tagsandregions/suggestions",
                           params={"iterationId": trees.iteration["id"], "imageIds": trees.untagged["Test"]})
    monkeypatch.setattr(_routes_exports, "EXPORT_SECONDS", 0.0)
    with EmulatorThread(config) as emu:
        c = Client(emu)
        deadline = time.monotonic() + 30
        while (exports := c.json("GET", path))[0]["status"] == "Exporting":
            assert time.monotonic() < deadline
            time.sleep(0.02)  # polling, as a client does
        assert exports[0]["status"] == "Done" and c.s.get(exports[0]["downloadUri"], timeout=30).status_code == 200
        query = c.json("POST", f"/projects/{trees.pid}/images/suggested", params={"iterationId": trees.iteration["id"]},
                       json={"tagIds": [], "threshold": 0.0})
        kept = next(r for r in query["results"] if r["id"] == trees.untagged["Test"])
        assert kept["created"] == suggested[0]["created"]  # stored, not scored again
        # deleting the iteration takes its downloads with it
        c.call("DELETE", f"/projects/{trees.pid}/iterations/{trees.iteration['id']}", 204)
        assert c.s.get(exports[0]["downloadUri"], timeout=30).status_code == 404
