"""A detection image can carry a tag without a box (the service takes CreateImageTags on a detection project).
The box-only label files cannot hold it: each writer says so per image (``WriteResult.dropped``), never silently
(the export reports them as ``labels_not_carried``); the CSV, which holds tags, keeps it."""

from __future__ import annotations

import csv
import io

import pytest

from cvbulk.pipeline.formats import ExportedImage, MemorySink, RegionLabel, write_labels

IMAGES = [
    ExportedImage("a" * 32, f"images/{'a' * 32}.jpg", 100, 80, ("cat", "dog"), (RegionLabel("dog", 0.1, 0.1, 0.5, 0.5),)),
    ExportedImage("b" * 32, f"images/{'b' * 32}.jpg", 100, 80, ("cat",), ()),
    ExportedImage("c" * 32, f"images/{'c' * 32}.jpg", 100, 80, ("dog",), (RegionLabel("dog", 0.2, 0.2, 0.5, 0.5),)),
]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "regions-json", "automl", "csv", "folders"])
def test_a_tag_without_a_box_is_never_dropped_silently(fmt):
    sink = MemorySink()
    result = write_labels(fmt, IMAGES, "detection", sink, tag_names=["cat", "dog"])
    dropped = dict(result.dropped)
    assert "c" * 32 not in dropped
    if fmt == "automl":  # left out whole (no box), with its reason
        assert dict(result.skipped)["b" * 32].startswith("no boxes")
        assert "cat" in dropped["a" * 32]
    elif fmt in ("csv", "folders"):
        rows = {r["path"]: r["tags"] for r in csv.DictReader(io.StringIO(sink.files["labels.csv"]))}
        assert rows[f"images/{'b' * 32}.jpg"] == "cat" and "cat" in rows[f"images/{'a' * 32}.jpg"]
        assert "cat" in dropped["a" * 32] and "cat" in dropped["b" * 32]  # regions.json (the boxes) lacks it
        assert "labels.csv" in dropped["b" * 32]
    else:
        assert set(dropped) == {"a" * 32, "b" * 32}
        assert all("'cat'" in why and "box" in why for why in dropped.values())
