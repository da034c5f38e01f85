"""Label sources: folders, CSV manifest, regions JSON (od_regions.json shape), COCO, AutoML JSONL, YOLO;
a malformed file is one LabelFileError with its line, bad labels of one image are that image's LabelProblem."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cvbulk.pipeline.labels import (
    AutoMLLabels,
    CocoLabels,
    CsvLabels,
    FolderLabels,
    LabelFileError,
    LabelProblem,
    Labels,
    LabelSource,
    RegionLabel,
    RegionsJsonLabels,
    YoloLabels,
    decide,
    open_label_source,
    tag_types,
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
        "./a/2.jpg,cat; bird\n"
        '"b/3 with, comma.jpg","dog; fish"\n'
        'x.jpg,"x|y, z"\n'
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
    assert src.labels_for("x.jpg") == Labels(("x|y, z",))  # ',' and '|' are characters of a tag, not separators
    assert src.tag_names() == ["bird", "cat", "dog", "fish", "owl", "x|y, z"]


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
    with pytest.raises(LabelFileError, match=r"^m\.csv: .*") as info:
        open_label_source(str(manifest), tmp_path / "root")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_csv_non_utf8_names_are_keys_as_the_scan_keeps_them(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path,tags\n\xff\xfe.jpg,x\nok.jpg,\xe9t\xe9\n")
    src = open_label_source(str(manifest), tmp_path)
    assert src.labels_for(os.fsdecode(b"\xff\xfe.jpg")) == Labels(("x",))
    bad = src.labels_for("ok.jpg")  # a Latin-1 tag is not text the service can take: this image alone
    assert isinstance(bad, LabelProblem) and "not valid text" in bad.reason


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
        ('{"x.jpg": {"tag": "a"}}', "expected a list of regions"),
        ('[1, 2]', "expected an object"),
        ('{"x.jpg": [\n  {"tag": "a",}\n]}', "line 2 column"),
    ],
)
def test_regions_json_errors(tmp_path: Path, doc: str, message: str) -> None:
    f = write(tmp_path / "r.json", doc)
    with pytest.raises(LabelFileError, match=r"^r\.json: ") as info:
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
    assert tag_types(src) == {}


def test_coco_supercategory_negative_names_the_tags_type(tmp_path: Path) -> None:
    # as cvbulk export writes a Negative tag; any other supercategory (COCO's "animal") is no tag type
    doc = coco()
    doc["categories"] = [{"id": 7, "name": "cat", "supercategory": "animal"}, {"id": 8, "name": "dog"},
                         {"id": 9, "name": "unused", "supercategory": "Negative"}]
    src = open_label_source(str(write(tmp_path / "c.json", json.dumps(doc))), tmp_path)
    assert tag_types(src) == {"unused": "Negative"}
    assert tag_types(object()) == {}  # a source that names no type


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"annotations": [{"image_id": 5, "category_id": 7, "bbox": [0, 0, 1, 1]}]}, "image_id 5 is not in 'images'"),
        ({"annotations": [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]}, "category_id 3"),
        ({"annotations": [{"image_id": 1}]}, "annotations[0]: missing 'category_id'"),
        ({"images": [{"id": 1, "width": 5, "height": 5}]}, "images[0]: missing 'file_name'"),
        ({"categories": [{"id": 7, "name": ""}]}, "categories[0] (id 7): a tag name is empty"),
        ({"categories": [{"id": 7, "name": "x" * 300}]}, "characters long"),
        ({"images": {"id": 1}}, "'images' must be a list"),
    ],
)
def test_coco_errors(tmp_path: Path, over: dict, message: str) -> None:
    f = write(tmp_path / "c.json", json.dumps(coco(**over)))
    with pytest.raises(LabelFileError, match=r"^c\.json: ") as info:
        open_label_source(str(f), tmp_path)
    assert message in str(info.value)


def test_open_label_source_errors(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="not found"):
        open_label_source(str(tmp_path / "none.csv"), tmp_path)
    write(tmp_path / "labels.yaml", "x: 1")
    with pytest.raises(LabelFileError, match="no 'names'"):
        open_label_source(str(tmp_path / "labels.yaml"), tmp_path)
    write(tmp_path / "labels.txt", "x")
    with pytest.raises(LabelFileError, match="unknown label source"):
        open_label_source(str(tmp_path / "labels.txt"), tmp_path)
    assert issubclass(LabelFileError, ValueError)


def test_label_file_named_relative_to_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "root" / "m.csv", "path,tags\nx.jpg,a\n")
    monkeypatch.chdir(tmp_path)
    src = open_label_source("m.csv", tmp_path / "root")
    assert src.labels_for("x.jpg") == Labels(("a",))


# --- one bad image is that image's problem; a malformed file is one error with its line (issue 17) --------

@pytest.mark.parametrize(
    ("region", "reason"),
    [
        ({"left": float("nan")}, "left is nan"),
        ({"top": float("inf")}, "top is inf"),
        ({"width": 0}, "width and height must be positive"),
        ({"height": -0.1}, "must be positive"),
        ({"left": 5}, "normalised"),
        ({"left": "0"}, "not a number"),
        ({"tag": ""}, "tag name is empty"),
        ({"tag": "x" * 257}, "257 characters"),
        ({"tag": "bell\x07"}, "control characters"),
    ],
)
def test_bad_region_rejects_that_image_alone(tmp_path: Path, region: dict, reason: str) -> None:
    box = {"tag": "a", "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    f = write(tmp_path / "r.json", json.dumps({"bad.jpg": [box, {**box, **region}], "good.jpg": [box]}))
    src = open_label_source(str(f), tmp_path)
    bad = src.labels_for("bad.jpg")
    assert isinstance(bad, LabelProblem) and bad.kind == "invalid" and reason in bad.reason, bad
    assert decide(bad, untagged=True) == bad  # never sent untagged instead
    assert src.labels_for("good.jpg") == Labels(("a",), (RegionLabel("a", 0.1, 0.1, 0.2, 0.2),))


def test_coco_box_wholly_outside_or_without_image_size_is_a_problem_of_its_image(tmp_path: Path) -> None:
    doc = coco(annotations=[
        {"image_id": 1, "category_id": 7, "bbox": [300, 0, 10, 10]},
        {"image_id": 2, "category_id": 7, "bbox": [1, 1, 10, 10]},
    ])
    doc["images"].append({"id": 3, "file_name": "c.jpg"})  # no size: fine without boxes
    doc["annotations"].append({"image_id": 3, "category_id": 8, "bbox": [0, 0, 1, 1]})
    doc["images"].append({"id": 4, "file_name": "d.jpg"})
    doc["annotations"].append({"image_id": 4, "category_id": 8, "bbox": [0, 0]})
    src = open_label_source(str(write(tmp_path / "c.json", json.dumps(doc))), tmp_path)
    outside = src.labels_for("imgs/a.jpg")
    assert isinstance(outside, LabelProblem) and "nothing of the box is inside" in outside.reason
    assert isinstance(src.labels_for("b.jpg"), Labels)
    nosize = src.labels_for("c.jpg")
    assert isinstance(nosize, LabelProblem) and "width and height" in nosize.reason
    short = src.labels_for("d.jpg")
    assert isinstance(short, LabelProblem) and "bbox must be" in short.reason


def test_coco_annotation_without_bbox_is_an_image_level_tag(tmp_path: Path) -> None:
    doc = coco(annotations=[{"image_id": 1, "category_id": 7}, {"image_id": 1, "category_id": 8}])
    src = open_label_source(str(write(tmp_path / "c.json", json.dumps(doc))), tmp_path)
    assert src.has_regions is False
    assert src.labels_for("imgs/a.jpg") == Labels(("cat", "dog"))


def test_deeply_nested_json_is_a_clear_file_error(tmp_path: Path) -> None:
    f = write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(LabelFileError, match="nested too deeply"):
        open_label_source(str(f), tmp_path)
    g = write(tmp_path / "deep.jsonl", '{"image_url": "a.jpg", "label": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(LabelFileError, match="line 1: the JSON is nested too deeply"):
        open_label_source(str(g), tmp_path)


def test_huge_label_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cvbulk.pipeline.labels._base as base

    monkeypatch.setattr(base, "MAX_LABEL_FILE_BYTES", 100)
    for name in ("big.json", "big.jsonl", "big.csv"):
        f = write(tmp_path / name, "path,tags\n" + "x" * 200)
        with pytest.raises(LabelFileError, match="larger than a label file may be"):
            open_label_source(str(f), tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path,tags\na.jpg,x\nb.jpg,"y\nc.jpg,z\n', "line 3: malformed CSV: unexpected end of data"),
        ('path,tags\na.jpg,x\nb.jpg,"""y;z\n', "line 3: malformed CSV"),
        ('path,tags\na.jpg,x\nb.jpg,"""y"" z;w"\n', "line 3: text after a closing quote"),
        ('path,tags\na.jpg,"""unclosed"\n', "line 2: unclosed quote in the tags cell"),
    ],
)
def test_csv_unclosed_quote_fails_the_file_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LabelFileError, match=r"^m\.csv: ") as info:
        open_label_source(str(write(tmp_path / "m.csv", text)), tmp_path)
    assert message in str(info.value), info.value


def test_csv_awkward_tags_round_trip_through_the_rule(tmp_path: Path) -> None:
    import csv as csvmod
    import io

    from cvbulk.pipeline.labels.tagcell import encode_tags

    tags = ["a;b", " lead", "trail ", 'say "hi"', "x|y", "c,d", "5\" screen", "plain"]
    buf = io.StringIO()
    w = csvmod.writer(buf, lineterminator="\n")
    w.writerow(["path", "tags"])
    w.writerow([" spaced name.jpg", encode_tags(tags)])
    src = open_label_source(str(write(tmp_path / "m.csv", buf.getvalue())), tmp_path)
    assert src.labels_for(" spaced name.jpg") == Labels(tuple(tags))


def test_the_untagged_rule() -> None:
    assert decide(None, untagged=False) == LabelProblem("no label", "no-label")
    assert decide(None, untagged=True) == Labels(())
    skipped = decide(Labels(()), untagged=False)
    assert isinstance(skipped, LabelProblem) and skipped.kind == "untagged"
    assert decide(Labels(()), untagged=True) == Labels(())
    assert decide(Labels(("a",)), untagged=False) == Labels(("a",))


def test_empty_region_list_is_untagged(tmp_path: Path) -> None:
    src = open_label_source(str(write(tmp_path / "r.json", '{"x.jpg": []}')), tmp_path)
    assert decide(src.labels_for("x.jpg"), untagged=False).kind == "untagged"  # type: ignore[union-attr]


def test_folder_name_that_is_no_tag(tmp_path: Path) -> None:
    (tmp_path / ("x" * 300)[:255]).mkdir()
    src = open_label_source("folders", tmp_path)
    assert isinstance(src.labels_for("x" * 255 + "/a.jpg"), Labels)
    bad = os.fsdecode(b"caf\xe9")
    got = src.labels_for(f"{bad}/a.jpg")
    assert isinstance(got, LabelProblem) and "not valid text" in got.reason


# --- AutoML JSONL ---------------------------------------------------------------------------------------------

AML = "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/export"


def jsonl(path: Path, *objs: object) -> Path:
    return write(path, "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))


def test_automl_multiclass_multilabel_detection(tmp_path: Path) -> None:
    mc = jsonl(tmp_path / "mc.jsonl",
               {"image_url": f"{AML}/images/a.jpg", "image_details": {"format": "jpg", "width": "400px"}, "label": "cat"},
               {"image_url": "images/b.jpg", "label": "dog"})
    src = open_label_source(str(mc), tmp_path)
    assert isinstance(src, AutoMLLabels) and src.kind == "multiclass" and not src.has_regions
    assert src.labels_for("images/a.jpg") == Labels(("cat",))  # ROOT is the uploaded folder: tail match
    assert src.labels_for("a.jpg") == Labels(("cat",))
    assert src.labels_for("images/b.jpg") == Labels(("dog",))
    ml = jsonl(tmp_path / "ml.jsonl", {"image_url": "AmlDatastore://image_data/c.jpg", "label": ["a", "b", "a"]},
               {"image_url": "https://acct.blob.core.windows.net/cont/dir/d%20e.jpg", "label": []})
    src = open_label_source(str(ml), tmp_path)
    assert src.labels_for("image_data/c.jpg") == Labels(("a", "b"))
    assert decide(src.labels_for("dir/d e.jpg"), untagged=False).kind == "untagged"  # type: ignore[union-attr]
    od = jsonl(tmp_path / "od.jsonl", {"image_url": "x/1.jpg", "label": [
        {"label": "can", "topX": 0.26, "topY": 0.406, "bottomX": 0.735, "bottomY": 0.701, "isCrowd": 0},
        {"label": "milk", "isCrowd": 0, "polygon": [[0.1, 0.2, 0.3, 0.2, 0.2, 0.5]]},
    ]})
    src = open_label_source(str(od), tmp_path)
    got = src.labels_for("x/1.jpg")
    assert src.has_regions and isinstance(got, Labels) and got.tags == ("can", "milk")
    assert (got.regions[0].width, got.regions[1].left, got.regions[1].height) == pytest.approx((0.475, 0.1, 0.3))


def test_automl_ambiguous_tail_and_bad_box(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "a.jsonl",
              {"image_url": f"{AML}/one/x.jpg", "label": []},
              {"image_url": f"{AML}/two/x.jpg", "label": []},
              {"image_url": "bad.jpg", "label": [{"label": "a", "topX": 0.5, "topY": 0, "bottomX": 0.5, "bottomY": 1}]})
    src = open_label_source(str(f), tmp_path)
    amb = src.labels_for("x.jpg")
    assert isinstance(amb, LabelProblem) and "several entries" in amb.reason
    assert src.labels_for("one/x.jpg") == Labels(())
    bad = src.labels_for("bad.jpg")
    assert isinstance(bad, LabelProblem) and "box 1" in bad.reason


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"image_url": "a.jpg", "label": "x"}', "{not json"], "line 2: invalid JSON"),
        (['{"label": "x"}'], "line 1: 'image_url' must be a non-empty string"),
        (['{"image_url": "a.jpg"}'], "line 1: missing 'label'"),
        (['{"image_url": "a.jpg", "label": 3}'], "'label' must be a string or a list"),
        (['{"image_url": "a.jpg", "label": "x"}', '{"image_url": "b.jpg", "label": ["y"]}'], "mixes label kinds"),
        (["[1]"], "line 1: expected an object"),
    ],
)
def test_automl_malformed_file(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(LabelFileError, match=r"^a\.jsonl: ") as info:
        open_label_source(str(jsonl(tmp_path / "a.jsonl", *lines)), tmp_path)
    assert message in str(info.value)


# --- YOLO -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "names",
    [
        "names: ['cat', \"dog\", bird]\n",
        "names:\n  - cat\n  - 'dog'\n  - bird # a comment\n",
        "names:\n  0: cat\n  1: dog\n  2: \"bird\"\n",
        "names: {0: cat, 1: dog, 2: bird}\n",
    ],
)
def test_yolo_data_yaml_forms(tmp_path: Path, names: str) -> None:
    write(tmp_path / "data.yaml", f"path: .\ntrain: images/train\nval: images/val\n{names}")
    write(tmp_path / "labels" / "train" / "a.txt", "1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.2 0.2\n")
    write(tmp_path / "labels" / "train" / "bad.txt", "7 0.5 0.5 0.2 0.4\n")
    src = open_label_source(str(tmp_path / "data.yaml"), tmp_path)
    assert isinstance(src, YoloLabels) and src.tag_names() == ["bird", "cat", "dog"]
    got = src.labels_for("images/train/a.jpg")
    assert isinstance(got, Labels) and got.tags == ("dog", "cat")
    r = got.regions[0]
    assert (r.left, r.top, r.width, r.height) == pytest.approx((0.4, 0.3, 0.2, 0.4))
    assert src.labels_for("images/train/none.jpg") == Labels(())  # no label file: a background image
    bad = src.labels_for("images/train/bad.jpg")
    assert isinstance(bad, LabelProblem) and "bad.txt: line 1: class 7" in bad.reason
    assert src.labels_for("elsewhere/a.jpg") is None


def test_yolo_labels_folder_with_darknet_names(tmp_path: Path) -> None:
    write(tmp_path / "lbl" / "classes.txt", "person\ncar\n")
    write(tmp_path / "lbl" / "sub" / "a.txt", "1 0.5 0.5 1.0 1.0\n")
    write(tmp_path / "lbl" / "nan.txt", "0 nan 0.5 0.1 0.1\n")
    src = open_label_source(str(tmp_path / "lbl"), tmp_path)
    assert src.labels_for("images/sub/a.png") == Labels(("car",), (RegionLabel("car", 0.0, 0.0, 1.0, 1.0),))
    assert isinstance(src.labels_for("nan.jpg"), LabelProblem)
    write(tmp_path / "bare" / "labels" / "a.txt", "0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(LabelFileError, match="needs its class names"):
        open_label_source(str(tmp_path / "bare" / "labels"), tmp_path)


# --- files other tools write ----------------------------------------------------------------------------------

def test_coco_from_another_tool(tmp_path: Path) -> None:
    doc = {
        "info": {"year": 2024}, "licenses": [{"id": 1, "name": "x"}],
        "images": [{"id": "img-1", "file_name": "train/a.jpg", "width": 640, "height": 480, "license": 1}],
        "categories": [{"id": 1, "name": "person", "supercategory": "human"}],
        "annotations": [{"id": 5, "image_id": "img-1", "category_id": 1, "bbox": [64, 48, 320, 240.0],
                         "area": 76800, "iscrowd": 0, "segmentation": [[64, 48, 384, 48, 384, 288]]}],
    }
    src = open_label_source(str(write(tmp_path / "instances_train.json", json.dumps(doc))), tmp_path)
    got = src.labels_for("train/a.jpg")
    assert isinstance(got, Labels) and got.tags == ("person",)
    r = got.regions[0]
    assert (r.left, r.top, r.width, r.height) == pytest.approx((0.1, 0.1, 0.5, 0.5))


def test_azure_ml_data_labeling_export_lines(tmp_path: Path) -> None:
    # A data labeling export carries extra keys (confidence, timestamps): they are ignored.
    line = {
        "image_url": "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/UI/2024/cats/x1.jpg",
        "image_details": {"format": "jpg", "width": "640px", "height": "480px"},
        "label": [{"label": "cat", "topX": 0.1, "topY": 0.2, "bottomX": 0.5, "bottomY": 0.6, "isCrowd": "false"}],
        "label_confidence": [1.0],
    }
    src = open_label_source(str(jsonl(tmp_path / "labels.jsonl", line)), tmp_path)
    got = src.labels_for("cats/x1.jpg")
    assert isinstance(got, Labels) and got.regions[0] == RegionLabel("cat", 0.1, 0.2, 0.4, pytest.approx(0.4))  # type: ignore[arg-type]


def test_ultralytics_style_data_yaml_with_extra_keys(tmp_path: Path) -> None:
    write(tmp_path / "coco8.yaml",
          "# Ultralytics\npath: ../datasets/coco8\ntrain: images/train\nval: images/val\ntest:\n\n"
          "names:\n  0: person\n  1: bicycle\n  2: 'traffic light'\n\ndownload: https://example.invalid/coco8.zip\n")
    write(tmp_path / "labels" / "val" / "z.txt", "2 0.5 0.5 0.5 0.5\n")
    src = open_label_source(str(tmp_path / "coco8.yaml"), tmp_path)
    assert src.tag_names() == ["bicycle", "person", "traffic light"]
    got = src.labels_for("images/val/z.jpg")
    assert isinstance(got, Labels) and got.tags == ("traffic light",)


# --- through the upload: one bad image does not stop the batch -------------------------------------------------

async def test_upload_skips_the_image_with_a_nan_box_and_sends_the_rest(tmp_path: Path, training_client) -> None:
    import anyio

    from cvbulk.pipeline.upload import UploadOptions, run_upload

    root = SAMPLES / "ObjectDetection" / "Images"
    regions = json.loads((SAMPLES / "od_regions.json").read_text(encoding="utf-8"))
    bad_key = sorted(regions)[0]
    regions[bad_key] = [{**regions[bad_key][0], "left": float("nan")}]
    label_file = tmp_path / "regions.json"
    label_file.write_text(json.dumps(regions), encoding="utf-8")  # NaN as JSON's NaN literal, as Python writes it
    options = UploadOptions(root=root, project="nan-box", state=tmp_path / "state.sqlite",
                            report=tmp_path / "report.json", create=True, labels=str(label_file))
    with anyio.fail_after(60):
        result = await run_upload(training_client, options)
    # decide(): invalid labels reject the image alone (never sent); the rest goes on
    assert result.report["counts"] == {"uploaded": 39, "skipped": 1, "rejected": 1}
    assert not result.ok
    import sqlite3

    with sqlite3.connect(tmp_path / "state.sqlite") as conn:  # the file's recorded outcome names why
        dump = "\n".join(conn.iterdump()).replace("''", "'")
    assert "bad labels: region 1: region 'fork': left is nan" in dump and bad_key in dump


def test_metadata_is_read_from_a_manifest_and_checked(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text(
        "path,tags,metadata\n"
        'a.jpg,cat,"{""source"": ""cam1"", ""day"": ""3""}"\n'
        "b.jpg,cat,\n"
        'c.jpg,cat,"{""n"": 3}"\n'
        "d.jpg,cat,not json\n"
        f'e.jpg,cat,"{json.dumps({f"k{i}": "v" for i in range(51)}).replace(chr(34), chr(34) * 2)}"\n',
        encoding="utf-8",
    )
    source = open_label_source(str(tmp_path / "labels.csv"), tmp_path)
    assert source.labels_for("a.jpg") == Labels(("cat",), metadata=(("day", "3"), ("source", "cam1")))
    assert source.labels_for("b.jpg") == Labels(("cat",))
    assert source.labels_for("c.jpg") == LabelProblem("metadata 'n': keys and values must be strings")
    assert source.labels_for("d.jpg") == LabelProblem("the metadata cell is not a JSON object")
    problem = source.labels_for("e.jpg")
    assert isinstance(problem, LabelProblem) and "at most 50" in problem.reason


def test_metadata_is_read_from_coco_images(tmp_path: Path) -> None:
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10, "metadata": {"source": "cam1"}},
            {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10, "metadata": ["x"]},
        ],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 2, "category_id": 1}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco), encoding="utf-8")
    source = open_label_source(str(tmp_path / "coco.json"), tmp_path)
    assert source.labels_for("a.jpg") == Labels(("cat",), metadata=(("source", "cam1"),))
    assert source.labels_for("b.jpg") == LabelProblem("metadata must be an object of strings, not list")
