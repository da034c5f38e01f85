"""Writer -> reader gives back the same tags per image and regions within 1e-6, for every format and kind,
with tag names that break naive separators, quoting, YAML and file systems."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvbulk.pipeline.formats import (
    SUPPORTED_KINDS,
    ExportedImage,
    FolderLayout,
    FormatOptions,
    LocalSink,
    image_relpath,
    write_labels,
)
from cvbulk.pipeline.labels import LabelProblem, Labels, decide, open_label_source

from ._data import AWKWARD_TAGS, images_for

LABEL_SPEC = {
    "csv": "labels.csv", "coco": "coco.json", "regions-json": "regions.json", "yolo": "data.yaml",
    "automl": "train/train.jsonl", "folders": "labels.csv",
}
CASES = [(fmt, kind) for fmt, kinds in SUPPORTED_KINDS.items() for kind in sorted(kinds)]


#: The formats with a place for image metadata (read back by upload); the others leave it out.
CARRY_METADATA = {"csv", "coco", "folders"}


def without_metadata(im: ExportedImage) -> ExportedImage:
    return ExportedImage(im.id, im.file, im.width, im.height, im.tags, im.regions, {}, im.created)


def assert_same(image: ExportedImage, got: Labels | LabelProblem | None) -> None:
    assert isinstance(got, Labels), (image.file, got)
    assert sorted(got.tags) == sorted(image.tags)
    assert got.metadata == tuple(sorted(image.metadata.items()))
    want = sorted(image.regions, key=lambda r: (r.tag, r.left, r.top))
    have = sorted(got.regions, key=lambda r: (r.tag, r.left, r.top))
    assert len(have) == len(want)
    for a, b in zip(have, want):
        assert a.tag == b.tag
        assert (a.left, a.top, a.width, a.height) == pytest.approx((b.left, b.top, b.width, b.height), abs=1e-6)


@pytest.mark.parametrize(("fmt", "kind"), CASES)
def test_round_trip(tmp_path: Path, fmt: str, kind: str) -> None:
    layout = FolderLayout(AWKWARD_TAGS) if fmt == "folders" else None
    images = images_for(kind, n=500, fmt=fmt)
    if layout is not None:
        images = [
            ExportedImage(im.id, layout.image_path(im.file, im.tags), im.width, im.height, im.tags, im.regions,
                          im.metadata, im.created)
            for im in images
        ]
    options = FormatOptions(include_untagged=True)
    result = write_labels(fmt, images, kind, LocalSink(tmp_path), options, tag_names=AWKWARD_TAGS, layout=layout)
    untagged = [im for im in images if not im.tags]
    carried = [im for im in images if im.tags or not (fmt == "automl" and kind == "multiclass")]
    assert result.carried == len(carried)
    assert [i for i, _ in result.skipped] == [im.id for im in images if im not in carried]
    source = open_label_source(str(tmp_path / LABEL_SPEC[fmt]), tmp_path)
    assert source.has_regions == (kind == "detection" and fmt != "csv" and fmt != "folders")
    for im in carried:
        got = source.labels_for(im.file)
        if fmt in ("csv", "folders"):  # a manifest carries tags and metadata; boxes travel in the other formats
            im = ExportedImage(im.id, im.file, tags=im.tags, metadata=im.metadata)
        elif fmt not in CARRY_METADATA:
            im = without_metadata(im)
        assert_same(im, got)
    for im in untagged:  # THE rule: untagged in the file -> skipped unless --untagged
        if im in carried:
            assert decide(source.labels_for(im.file), untagged=False) == LabelProblem(
                decide(Labels(()), untagged=False).reason, "untagged")  # type: ignore[union-attr]
            sent = decide(source.labels_for(im.file), untagged=True)
            assert isinstance(sent, Labels) and sent.tags == () and sent.regions == ()
    assert set(source.tag_names()) >= {t for im in carried for t in im.tags}


def test_folders_read_back_by_folder_name(tmp_path: Path) -> None:
    layout = FolderLayout(AWKWARD_TAGS)
    images = images_for("multiclass", fmt="folders")
    placed = [ExportedImage(im.id, layout.image_path(image_relpath("csv", im.id, ".jpg"), im.tags), tags=im.tags)
              for im in images]
    write_labels("folders", placed, "multiclass", LocalSink(tmp_path), layout=layout, tag_names=AWKWARD_TAGS)
    for im in placed:
        (tmp_path / im.file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / im.file).write_bytes(b"x")
    source = open_label_source("folders", tmp_path)
    for im in placed:
        got = source.labels_for(im.file)
        if im.tags:
            assert got == Labels(im.tags), im.file
        else:
            assert got is None
    assert set(source.tag_names()) == {t for im in placed for t in im.tags}


def test_detection_regions_of_the_folders_layout_travel_in_regions_json(tmp_path: Path) -> None:
    images = images_for("detection", n=20, fmt="folders")
    result = write_labels("folders", images, "detection", LocalSink(tmp_path), tag_names=AWKWARD_TAGS)
    assert "regions.json" in result.files
    source = open_label_source(str(tmp_path / "regions.json"), tmp_path)
    for im in images:
        assert_same(without_metadata(im), source.labels_for(im.file))  # regions.json has no place for it


def test_an_empty_detection_export_still_reads_as_detection(tmp_path: Path) -> None:
    images = [ExportedImage("a", "images/a.jpg", 10, 10)]
    write_labels("coco", images, "detection", LocalSink(tmp_path))
    assert open_label_source(str(tmp_path / "coco.json"), tmp_path).has_regions
