"""project -> export (automl, coco, yolo) -> ``upload --labels`` into a new project: the same images
(sha256), the same tags per image, regions within 1e-6; on the emulator, 1,000 images per kind for AutoML."""

from __future__ import annotations

import json
import os
import time

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, run_export
from cvbulk.pipeline.formats import validate_line

from ._build import assert_same, build_project, contents, upload_labels

pytestmark = pytest.mark.timeout(240)
BIG = int(os.environ.get("CVBULK_EXPORT_ROUNDTRIP_N", "1000"))
SMALL = int(os.environ.get("CVBULK_EXPORT_ROUNDTRIP_SMALL", "300"))  # 1,000 with the env var
TIMES: dict[str, float] = {}


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "detection"])
async def test_automl_round_trip(tmp_path, training_client, kind):
    client = training_client
    t0 = time.perf_counter()
    source = await build_project(client, f"src-{kind}", kind, BIG)
    t1 = time.perf_counter()
    out = tmp_path / "out"
    with anyio.fail_after(120):
        result = await run_export(client, ExportOptions(source, out, "automl", validation_split=0.2))
    t2 = time.perf_counter()
    assert result.ok, (result.failures[:3], result.summary["count_check"])
    assert result.counts == {"exported": BIG}
    files = result.summary["label_files"]
    assert {"train/train.jsonl", "train/MLTable", "validation/validation.jsonl", "validation/MLTable"} <= set(files)
    lines = [json.loads(x) for f in ("train/train.jsonl", "validation/validation.jsonl")
             for x in (out / f).read_text().splitlines()]
    assert len(lines) == BIG
    for line in lines:
        assert validate_line(line, kind) == [], line
    assert (out / "model.json").exists()

    target = await upload_labels(client, out, "train/train.jsonl", f"back-{kind}", tmp_path)
    await upload_labels(client, out, "validation/validation.jsonl", target, tmp_path)
    t3 = time.perf_counter()
    assert_same(await contents(client, source), await contents(client, target))
    TIMES[f"automl-{kind}"] = t2 - t1
    print(f"\n{kind} n={BIG}: build {t1 - t0:.1f}s export {t2 - t1:.1f}s ({BIG / (t2 - t1):.0f} img/s) "
          f"upload back {t3 - t2:.1f}s")


@pytest.mark.parametrize(("kind", "fmt", "labels"), [
    ("multiclass", "coco", "coco.json"),
    ("multilabel", "coco", "coco.json"),
    ("detection", "coco", "coco.json"),
    ("detection", "yolo", "data.yaml"),
    ("multilabel", "csv", "labels.csv"),
])
async def test_coco_and_yolo_round_trip(tmp_path, training_client, kind, fmt, labels):
    client = training_client
    source = await build_project(client, f"src-{kind}-{fmt}", kind, SMALL, seed=2)
    out = tmp_path / "out"
    with anyio.fail_after(60):
        result = await run_export(client, ExportOptions(source, out, fmt))
    assert result.ok, (result.failures[:3], result.summary["count_check"])
    assert labels in result.summary["label_files"]
    if fmt == "coco":  # metadata has a place in COCO, and upload sets it back
        coco = json.loads((out / "coco.json").read_text())
        assert {im["metadata"]["batch"] for im in coco["images"]} == {str(k) for k in range((SMALL + 63) // 64)}
    target = await upload_labels(client, out, labels, f"back-{kind}-{fmt}", tmp_path)
    assert_same(await contents(client, source), await contents(client, target), metadata=fmt in ("coco", "csv"))
