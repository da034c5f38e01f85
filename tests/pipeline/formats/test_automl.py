"""AutoML JSONL + MLTable: every line valid against the schema written from the Azure ML page, the MLTable
shaped like the page's sample, a deterministic split, the url prefix, and the untagged/negative choices."""

from __future__ import annotations

import json

import pytest

from cvbulk.pipeline.formats import ExportedImage, FormatOptions, MemorySink, RegionLabel, validate_line, write_automl
from cvbulk.pipeline.formats.automl_schema import SCHEMAS, validate

from . import _yaml_subset
from ._data import images_for

PREFIX = "azureml://subscriptions/sub/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore/paths/cv-export"


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "detection"])
@pytest.mark.parametrize("split", [0.0, 0.25])
def test_every_line_is_valid_and_the_mltable_matches_the_page(kind: str, split: float) -> None:
    sink = MemorySink()
    images = images_for(kind, n=300)
    result = write_automl(images, kind, sink, FormatOptions(image_url_prefix=PREFIX, validation_split=split,
                                                            include_untagged=kind != "multiclass"))
    sides = ["train", "validation"] if split else ["train"]
    assert result.files == [f for s in sides for f in (f"{s}/{s}.jsonl", f"{s}/MLTable")]
    lines = 0
    for side in sides:
        for text in sink.files[f"{side}/{side}.jsonl"].splitlines():
            obj = json.loads(text)
            assert validate_line(obj, kind) == [], text
            assert obj["image_url"].startswith(PREFIX + "/images/")
            lines += 1
        table = _yaml_subset.load(sink.files[f"{side}/MLTable"])
        assert table == {
            "paths": [{"file": f"./{side}.jsonl"}],
            "transformations": [
                {"read_json_lines": {"encoding": "utf8", "invalid_lines": "error", "include_path_column": False}},
                {"convert_column_types": [{"columns": "image_url", "column_type": "stream_info"}]},
            ],
        }
    assert lines == result.carried
    if split:
        val = len(sink.files["validation/validation.jsonl"].splitlines())
        assert 0.15 * lines < val < 0.35 * lines


def test_split_is_deterministic_and_by_image_id() -> None:
    images = images_for("multilabel", n=200)
    a, b = MemorySink(), MemorySink()
    write_automl(images, "multilabel", a, FormatOptions(validation_split=0.2))
    write_automl(list(reversed(images)), "multilabel", b, FormatOptions(validation_split=0.2))
    assert sorted(a.files["validation/validation.jsonl"].splitlines()) == sorted(
        b.files["validation/validation.jsonl"].splitlines())


def test_relative_urls_by_default_and_prefix_slash() -> None:
    im = ExportedImage("id1", "images/id1.gif", 10, 20, ("cat",))
    sink = MemorySink()
    write_automl([im], "multiclass", sink)
    obj = json.loads(sink.files["train/train.jsonl"])
    # gif is not a format the page lists: the optional key is left out rather than written invalid
    assert obj == {"image_url": "images/id1.gif", "image_details": {"width": 10, "height": 20}, "label": "cat"}
    write_automl([im], "multiclass", sink, FormatOptions(image_url_prefix=PREFIX + "/"))
    assert json.loads(sink.files["train/train.jsonl"])["image_url"] == PREFIX + "/images/id1.gif"


def test_untagged_negative_and_multi_tag_choices() -> None:
    images = [
        ExportedImage("u", "images/u.jpg", 5, 5),
        ExportedImage("n", "images/n.jpg", 5, 5, ("Negative",)),
        ExportedImage("two", "images/two.jpg", 5, 5, ("a", "b")),
    ]
    sink = MemorySink()
    result = write_automl(images, "multiclass", sink, FormatOptions(negative_tags=frozenset({"Negative"})))
    assert [json.loads(x)["label"] for x in sink.files["train/train.jsonl"].splitlines()] == ["Negative"]
    assert dict(result.skipped).keys() == {"u", "two"}
    assert "untagged" in dict(result.skipped)["u"]
    result = write_automl(images[:1], "multilabel", sink)
    assert result.carried == 0 and sink.files["train/train.jsonl"] == ""
    result = write_automl(images[:1], "detection", sink, FormatOptions(include_untagged=True))
    assert json.loads(sink.files["train/train.jsonl"])["label"] == []


def test_a_box_the_reader_would_reject_is_never_written() -> None:
    bad = ExportedImage("b", "images/b.jpg", 5, 5, ("a",), (RegionLabel("a", float("nan"), 0, 0.5, 0.5),))
    good = ExportedImage("g", "images/g.jpg", 5, 5, ("a",), (RegionLabel("a", 0.1, 0.1, 0.5, 0.5),))
    sink = MemorySink()
    result = write_automl([bad, good], "detection", sink)
    assert result.carried == 1 and result.skipped[0][0] == "b" and "nan" in result.skipped[0][1]


@pytest.mark.parametrize(
    ("kind", "line", "error"),
    [
        ("multiclass", {"image_url": "x", "label": ["a"]}, "expected string"),
        ("multiclass", {"image_url": "x"}, "missing 'label'"),
        ("multiclass", {"label": "a"}, "missing 'image_url'"),
        ("multiclass", {"image_url": "x", "label": "a", "image_details": {"format": "gif"}}, "not one of"),
        ("multiclass", {"image_url": "x", "label": "a", "image_details": {"width": 0}}, "matches none"),
        ("multilabel", {"image_url": "x", "label": "a"}, "expected array"),
        ("detection", {"image_url": "x", "label": [{"label": "a", "topX": 0, "topY": 0, "bottomX": 1.5, "bottomY": 1}]},
         "above 1"),
        ("detection", {"image_url": "x", "label": [{"label": "a", "topX": 0.5, "topY": 0, "bottomX": 0.2, "bottomY": 1}]},
         "top-left corner"),
        ("detection", {"image_url": "x", "label": [{"label": "a", "topX": 0, "topY": 0, "bottomY": 1}]}, "missing 'bottomX'"),
    ],
)
def test_the_validator_rejects_what_the_page_does_not_allow(kind: str, line: dict, error: str) -> None:
    errors = validate_line(line, kind)
    assert errors and any(error in e for e in errors), errors


def test_the_pages_own_samples_are_valid() -> None:
    url = "azureml://subscriptions/my-subscription-id/resourcegroups/my-resource-group/workspaces/my-workspace/datastores/my-datastore/paths/image_data/Image_01.jpg"
    details = {"format": "jpg", "width": "400px", "height": "258px"}
    assert validate({"image_url": url, "image_details": details, "label": "can"}, SCHEMAS["multiclass"]) == []
    assert validate({"image_url": url, "image_details": details, "label": ["can", "milk_bottle"]},
                    SCHEMAS["multilabel"]) == []
    box = {"label": "can", "topX": 0.260, "topY": 0.406, "bottomX": 0.735, "bottomY": 0.701, "isCrowd": 0}
    assert validate_line({"image_url": url, "image_details": details, "label": [box]}, "detection") == []
