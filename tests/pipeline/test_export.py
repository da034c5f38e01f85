"""Export against the real emulator: round trips through ``cvbulk upload`` and resumption."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import anyio
import pytest

from cvbulk.client import ImageFileCreateEntry, Region
from cvbulk.pipeline.export import ExportOptions, run_export
from cvbulk.pipeline.journal import Journal
from cvbulk.pipeline.labels import open_label_source
from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests.corpus import make_jpeg
from tests.pipeline._transfer_support import CancelAfter, project_images, sha

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
CLASSIFICATION = SAMPLES / "ImageClassification" / "Images"
DETECTION = SAMPLES / "ObjectDetection" / "Images"

pytestmark = pytest.mark.timeout(60)


async def content_labels(client, project_id: str) -> dict[str, tuple]:
    """sha256 of each image's bytes -> (sorted tag names, sorted regions): what a project holds."""
    return {k: (tags, regions) for k, (tags, regions, _) in (await project_images(client, project_id)).items()}


async def upload_back(client, opts: UploadOptions) -> str:
    """An export uploaded back with the upload pipeline; returns the new project's id."""
    with anyio.fail_after(30):
        up = await run_upload(client, opts)
    assert up.ok, up.report["failures"]
    return up.report["extra"]["project"]["id"]


async def upload_samples(client, name: str) -> str:
    """The classification sample (Hemlock, Japanese_Cherry) into a new project, with the client."""
    project = await client.create_project(name)
    for folder in ("Hemlock", "Japanese_Cherry"):
        tag = await client.create_tag(project.id, folder)
        files = sorted((CLASSIFICATION / folder).iterdir())
        summary = await client.create_images_from_data(
            project.id, [(f.name, f.read_bytes()) for f in files], tag_ids=[tag.id]
        )
        assert all(r.status == "OK" for r in summary.images)
    return project.id


async def upload_detection_sample(client, name: str) -> str:
    domains = [d for d in await client.get_domains() if d.type == "ObjectDetection"]
    project = await client.create_project(name, domain_id=domains[0].id)
    tags = {n: (await client.create_tag(project.id, n)).id for n in ("fork", "scissors")}
    regions = json.loads((SAMPLES / "od_regions.json").read_text())
    entries = []
    for folder in ("fork", "scissors"):
        for f in sorted((DETECTION / folder).iterdir()):
            boxes = tuple(Region(tags[r["tag"]], r["left"], r["top"], r["width"], r["height"]) for r in regions[f.name])
            entries.append(ImageFileCreateEntry(f.name, f.read_bytes(), regions=boxes))
    for start in range(0, len(entries), 16):
        summary = await client.create_images_from_files(project.id, entries[start : start + 16])
        assert all(r.status == "OK" for r in summary.images), summary
    return project.id


async def _export_ok(client, options: ExportOptions):
    """The export, within 30 s, that went well (its failures shown when not)."""
    with anyio.fail_after(30):
        result = await run_export(client, options)
    assert result.ok, result.report["failures"]
    return result


async def test_classification_sample_folders_round_trip(tmp_path, training_client):
    source = await upload_samples(training_client, "trees")
    out = tmp_path / "out"
    result = await _export_ok(training_client, ExportOptions("trees", out, "folders"))
    assert result.report["counts"] == {"exported": 20}
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) == [
        "Hemlock", "Japanese_Cherry"]
    assert (out / "model.json").exists() and (out / "labels.csv").exists()
    # the exported files are the sample files, byte for byte, under their tag
    expected = {
        sha(f.read_bytes()): folder for folder in ("Hemlock", "Japanese_Cherry")
        for f in (CLASSIFICATION / folder).iterdir()
    }
    on_disk = {sha(f.read_bytes()): f.parent.name for f in out.glob("*/*.jpg")}
    assert on_disk == expected

    # back in with the upload pipeline: same images (by content) under the same tags
    target = await upload_back(training_client, UploadOptions(
        root=out, project="trees-again", create=True, state=tmp_path / "up.sqlite", report=tmp_path / "up.json"))
    assert await content_labels(training_client, target) == await content_labels(training_client, source)

    # a second export has nothing to do
    again = await run_export(training_client, ExportOptions("trees", out, "folders"))
    assert again.ok
    assert again.report["counts"] == {}
    assert again.report["extra"]["unchanged"] == 20


async def test_detection_sample_regions_json_round_trip(tmp_path, training_client):
    source = await upload_detection_sample(training_client, "cutlery")
    out = tmp_path / "od"
    result = await _export_ok(training_client, ExportOptions("cutlery", out, "regions-json"))
    labels = out / "regions.json"
    assert result.report["extra"]["label_file"] == "regions.json"
    exported = json.loads(labels.read_text())
    assert len(exported) == 40

    target = await upload_back(training_client, UploadOptions(
        root=out, project="cutlery-again", create=True, labels=str(labels), state=tmp_path / "up.sqlite",
        report=tmp_path / "up.json"))
    before = await content_labels(training_client, source)
    after = await content_labels(training_client, target)
    assert before.keys() == after.keys()
    for digest, (tags, regions) in before.items():
        tags2, regions2 = after[digest]
        assert tags2 == tags
        assert len(regions2) == len(regions)
        for a, b in zip(regions, regions2):
            assert a[0] == b[0]
            assert all(abs(x - y) <= 1e-6 for x, y in zip(a[1:], b[1:])), (a, b)
    # and against the sample's own label file
    sample = json.loads((SAMPLES / "od_regions.json").read_text())
    by_sha = {sha(f.read_bytes()): sample[f.name] for d in ("fork", "scissors") for f in (DETECTION / d).iterdir()}
    for digest, (_, regions) in after.items():
        want = sorted((r["tag"], r["left"], r["top"], r["width"], r["height"]) for r in by_sha[digest])
        for a, b in zip(want, regions):
            assert all(abs(x - y) <= 1e-6 for x, y in zip(a[1:], b[1:]))


async def test_csv_and_coco_read_back_by_the_label_sources(tmp_path, training_client):
    project = await training_client.create_project("mixed")
    a = await training_client.create_tag(project.id, "a")
    b = await training_client.create_tag(project.id, "b")
    files = [make_jpeg(tmp_path / "src" / f"{i}.jpg", seed=i) for i in range(5)]
    entries = [
        ImageFileCreateEntry("0.jpg", files[0].read_bytes(), tag_ids=(a.id,)),
        ImageFileCreateEntry("1.jpg", files[1].read_bytes(), tag_ids=(a.id, b.id)),
        ImageFileCreateEntry("2.jpg", files[2].read_bytes(), regions=(Region(b.id, 0.1, 0.2, 0.3, 0.4),)),
        ImageFileCreateEntry("3.jpg", files[3].read_bytes()),
    ]
    await training_client.create_images_from_files(project.id, entries)
    by_sha = {sha(f.read_bytes()): i for i, f in enumerate(files)}

    csv_out = tmp_path / "csv"
    result = await run_export(training_client, ExportOptions(project.id, csv_out, "csv"))
    assert result.ok
    source = open_label_source(str(csv_out / "labels.csv"), csv_out)
    got = {}
    for row in csv.DictReader((csv_out / "labels.csv").open()):
        got[by_sha[sha((csv_out / row["path"]).read_bytes())]] = source.labels_for(row["path"]).tags
    assert got == {0: ("a",), 1: ("a", "b"), 2: ("b",), 3: ()}

    coco_out = tmp_path / "coco"
    result = await run_export(training_client, ExportOptions(project.id, coco_out, "coco"))
    assert result.ok
    coco = json.loads((coco_out / "coco.json").read_text())
    assert {c["name"] for c in coco["categories"]} == {"a", "b"}
    assert all(i["width"] == 64 and i["height"] == 64 for i in coco["images"])
    source = open_label_source(str(coco_out / "coco.json"), coco_out)
    # a classification project: COCO carries tags as annotations without a box
    tags_back = {by_sha[sha((coco_out / i["file_name"]).read_bytes())]: source.labels_for(i["file_name"]).tags
                 for i in coco["images"]}
    assert tags_back == {0: ("a",), 1: ("a", "b"), 2: ("b",), 3: ()}

    # folders with a multi-tag image: the manifest carries what a folder cannot
    folders_out = tmp_path / "folders"
    result = await run_export(training_client, ExportOptions(project.id, folders_out, "folders"))
    assert (folders_out / "labels.csv").exists()
    assert len(list(folders_out.glob("*.jpg"))) == 1  # the untagged one sits at the root


async def test_export_resumes_after_cancel_and_refetches_a_deleted_file(tmp_path, training_client):
    project = await training_client.create_project("many")
    tag = await training_client.create_tag(project.id, "t")
    data = [make_jpeg(tmp_path / "src" / f"{i}.jpg", size=(16, 16), seed=i).read_bytes() for i in range(40)]
    await training_client.create_images_from_data(project.id, [(f"{i}.jpg", d) for i, d in enumerate(data)],
                                                  tag_ids=[tag.id])
    out = tmp_path / "out"
    with anyio.CancelScope() as scope:
        await run_export(training_client, ExportOptions("many", out, "csv", max_concurrency=4),
                         progress=CancelAfter(10, scope))
    assert scope.cancel_called
    with Journal.open(out / ".cvbulk" / "export.sqlite", job="export", fingerprint={
        "project_id": project.id, "destination": str(out.resolve()), "format": "csv"}) as j:
        done_first = j.counts().get("exported", 0)
    assert 10 <= done_first < 40

    result = await run_export(training_client, ExportOptions("many", out, "csv"))
    assert result.ok
    assert result.report["counts"] == {"exported": 40 - done_first}
    assert sorted(sha(p.read_bytes()) for p in (out / "images").iterdir()) == sorted(sha(d) for d in data)
    assert not list((out / "images").glob(".*"))  # no half-written file left behind

    victim = next((out / "images").iterdir())
    victim.unlink()
    result = await run_export(training_client, ExportOptions("many", out, "csv"))
    assert result.report["counts"] == {"exported": 1}
    assert victim.exists()
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == 40 and {r["tags"] for r in rows} == {"t"}
