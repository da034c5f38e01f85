"""Label sources: folders, CSV manifest, regions JSON (od_regions.json shape), COCO; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvbulk.pipeline.labels import (
    CocoLabels, CsvLabels, FolderLabels, LabelFileError, Labels, LabelSource, RegionLabel, RegionsJsonLabels,
    open_label_source,
)

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


# --- folders -------------------------------------------------------------------------------------------

def test_folders(tmp_path: Path) -> None:
    for d in ["Hemlock", "Japanese_Cherry/deep/er", ".git", "Empty"]:
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "loose.jpg").write_bytes(b"x")
    src = open_label_source("folders", tmp_path)
    assert isinstance(src, FolderLabels) and isinstance(src, LabelSource)
    assert src.has_regions is False
    assert src.labels_for("Hemlock/h1.jpg") == Labels(("Hemlock",))
    assert src.labels_for("Japanese_Cherry/deep/er/x.jpg") == Labels(("Japanese_Cherry",))
    assert src.labels_for("loose.jpg") is None
    assert src.tag_names() == ["Empty", "Hemlock", "Japanese_Cherry"]


# --- CSV -----------------------------------------------------------------------------------------------

def test_csv_manifest_separators_bom_absolute_and_merge(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    manifest = write(
        tmp_path / "labels.csv",
        "Path,Tags,extra\n"
        "a/1.jpg,cat;dog,x\n"
        "./a/2.jpg,cat|bird\n"
        '"b/3 with, comma.jpg","dog, fish"\n'
        f"{root / 'c' / '4.jpg'},cat\n"
        "a\\5.jpg,cat\n"
        "a/1.jpg,dog;owl\n"
        "\n"
        "6.jpg,\n",
        encoding="utf-8-sig",  # a BOM, as Excel writes it
    )
    src = open_label_source(str(manifest), root)
    assert isinstance(src, CsvLabels) and not src.has_regions
    assert src.labels_for("a/1.jpg") == Labels(("cat", "dog", "owl"))
    assert src.labels_for("a/2.jpg") == Labels(("cat", "bird"))
    assert src.labels_for("b/3 with, comma.jpg") == Labels(("dog", "fish"))
    assert src.labels_for("c/4.jpg") == Labels(("cat",))
    assert src.labels_for("a/5.jpg") == Labels(("cat",))
    assert src.labels_for("6.jpg") == Labels(())  # listed, with no tag
    assert src.labels_for("not/listed.jpg") is None
    assert src.tag_names() == ["bird", "cat", "dog", "fish", "owl"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("file_path,classes\na.jpg,x\n", "line 1: expected a header with 'path' and 'tags'"),
        ("path,tags\na.jpg,x\n,y\n", "line 3: no path"),
        ("path,tags\n../outside.jpg,x\n", "line 2: path '../outside.jpg' is outside ROOT"),
        ("path,tags\n/elsewhere/x.jpg,x\n", "outside ROOT"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    manifest = write(tmp_path / "m.csv", text)
    with pytest.raises(LabelFileError, match="^m.csv: .*") as info:
        open_label_source(str(manifest), tmp_path / "root")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_csv_not_utf8(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path,tags\n\xff\xfe.jpg,x\n")
    with pytest.raises(LabelFileError, match="not UTF-8"):
        open_label_source(str(manifest), tmp_path)


# --- regions JSON ----------------------------------------------------------------------------------------

def test_regions_json_from_the_samples() -> None:
    root = SAMPLES / "ObjectDetection" / "Images"
    src = open_label_source(str(SAMPLES / "od_regions.json"), root)
    assert isinstance(src, RegionsJsonLabels) and src.has_regions
    assert src.tag_names() == ["fork", "scissors"]
    labels = src.labels_for("fork/fork_1.jpg")  # keys are bare file names: matched in any folder
    assert labels is not None and labels.tags == ("fork",)
    assert labels.regions[0] == RegionLabel("fork", 0.145833328, 0.3509314, 0.5894608, 0.238562092)
    files = [p.relative_to(root).as_posix() for p in root.rglob("*.jpg")]
    labelled = [f for f in files if src.labels_for(f) is not None]
    assert len(labelled) == 40 and src.labels_for("test/test_image.jpg") is None


def test_regions_json_relative_keys_and_clamp(tmp_path: Path) -> None:
    f = write(tmp_path / "r.json", json.dumps({
        "sub/x.jpg": [{"tag": "a", "left": 0.9, "top": 0.0, "width": 0.105, "height": 0.5},
                      {"tag": "b", "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}],
    }))
    src = open_label_source(str(f), tmp_path)
    labels = src.labels_for("sub/x.jpg")
    assert labels is not None and labels.tags == ("a", "b")
    assert labels.regions[0].left == 0.9 and labels.regions[0].width == pytest.approx(0.1)
    assert src.labels_for("other/x.jpg") is None  # a key with a folder matches that path only


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"x.jpg": [{"tag": "a", "left": 0, "top": 0, "width": 0.5}]}', "entry 'x.jpg' region 1: missing 'height'"),
        ('{"x.jpg": [{"tag": "a", "left": "0", "top": 0, "width": 0.5, "height": 1}]}', "'left' is not a number"),
        ('{"x.jpg": [{"tag": "a", "left": 10, "top": 0, "width": 50, "height": 40}]}', "normalised"),
        ('{"x.jpg": {"tag": "a"}}', "expected a list of regions"),
        ('[1, 2]', "expected an object"),
        ('{"x.jpg": [\n  {"tag": "a",}\n]}', "line 2 column"),
    ],
)
def test_regions_json_errors(tmp_path: Path, doc: str, message: str) -> None:
    f = write(tmp_path / "r.json", doc)
    with pytest.raises(LabelFileError, match="^r.json: ") as info:
        open_label_source(str(f), tmp_path)
    assert message in str(info.value)


# --- COCO ------------------------------------------------------------------------------------------------

def coco(**over: object) -> dict:
    doc = {
        "images": [{"id": 1, "file_name": "imgs/a.jpg", "width": 200, "height": 100},
                   {"id": 2, "file_name": "b.jpg", "width": 50, "height": 50}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 8, "name": "dog"}, {"id": 9, "name": "unused"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [20, 10, 100, 50]},
            {"id": 2, "image_id": 1, "category_id": 8, "bbox": [150, -10, 100, 60]},  # sticks out: clamped
            {"id": 3, "image_id": 1, "category_id": 8, "bbox": [300, 0, 10, 10]},     # wholly outside: dropped
        ],
    }
    doc.update(over)
    return doc


def test_coco_pixel_boxes_to_normalised_regions(tmp_path: Path) -> None:
    f = write(tmp_path / "instances.json", json.dumps(coco()))
    src = open_label_source(str(f), tmp_path)
    assert isinstance(src, CocoLabels) and src.has_regions
    labels = src.labels_for("imgs/a.jpg")
    assert labels is not None and labels.tags == ("cat", "dog")
    cat, dog = labels.regions
    assert (cat.left, cat.top, cat.width, cat.height) == pytest.approx((0.1, 0.1, 0.5, 0.5))
    assert (dog.left, dog.top, dog.width, dog.height) == pytest.approx((0.75, 0.0, 0.25, 0.5))
    assert src.labels_for("somewhere/b.jpg") == Labels((), ())  # in the file, no boxes
    assert src.tag_names() == ["cat", "dog", "unused"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"annotations": [{"image_id": 5, "category_id": 7, "bbox": [0, 0, 1, 1]}]}, "image_id 5 is not in 'images'"),
        ({"annotations": [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]}, "category_id 3"),
        ({"annotations": [{"image_id": 1, "category_id": 7, "bbox": [0, 0, 1]}]}, "bbox must be"),
        ({"annotations": [{"image_id": 1, "category_id": 7}]}, "annotations[0]: missing 'bbox'"),
        ({"images": [{"id": 1, "file_name": "a.jpg", "height": 5}]}, "images[0]: missing 'width'"),
    ],
)
def test_coco_errors(tmp_path: Path, over: dict, message: str) -> None:
    f = write(tmp_path / "c.json", json.dumps(coco(**over)))
    with pytest.raises(LabelFileError, match="^c.json: ") as info:
        open_label_source(str(f), tmp_path)
    assert message in str(info.value)


def test_open_label_source_errors(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="not found"):
        open_label_source(str(tmp_path / "none.csv"), tmp_path)
    write(tmp_path / "labels.yaml", "x: 1")
    with pytest.raises(LabelFileError, match="unknown label source"):
        open_label_source(str(tmp_path / "labels.yaml"), tmp_path)
    assert issubclass(LabelFileError, ValueError)


def test_label_file_named_relative_to_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "root" / "m.csv", "path,tags\nx.jpg,a\n")
    monkeypatch.chdir(tmp_path)
    src = open_label_source("m.csv", tmp_path / "root")
    assert src.labels_for("x.jpg") == Labels(("a",))
