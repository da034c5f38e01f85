"""``image_url`` is a URL: the --image-url-prefix joined to the image's path with exactly one slash, and the
characters a URL cannot hold (a space, ``#`` which starts a fragment, ``?`` a query, a ``%`` that is not an
escape, text outside ASCII) percent-encoded; an escape the user already wrote stays as it is. The relative
default names images by their id, which needs no encoding."""

from __future__ import annotations

import json

import pytest

from cvbulk.pipeline.formats import ExportedImage, FormatOptions, MemorySink, write_automl
from cvbulk.pipeline.formats.automl import datastore_prefix_hint

BASE = "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/ds/paths/"


@pytest.mark.parametrize(("prefix", "expected"), [
    (BASE + "trees", BASE + "trees/"),
    (BASE + "trees/", BASE + "trees/"),
    (BASE + "trees//", BASE + "trees/"),
    (BASE + "my export", BASE + "my%20export/"),
    (BASE + "my%20export/", BASE + "my%20export/"),
    (BASE + "a#1?x/", BASE + "a%231%3Fx/"),
    (BASE + "100%/", BASE + "100%25/"),
    (BASE + "ünï 日本/", BASE + "%C3%BCn%C3%AF%20%E6%97%A5%E6%9C%AC/"),
    ("https://acct.blob.core.windows.net/c/p q/", "https://acct.blob.core.windows.net/c/p%20q/"),
])
def test_the_prefix_is_joined_once_and_encoded(prefix, expected):
    sink = MemorySink()
    write_automl([ExportedImage("id1", "images/id1.jpg", 10, 20, ("cat",))], "multiclass", sink,
                 FormatOptions(image_url_prefix=prefix))
    assert json.loads(sink.files["train/train.jsonl"])["image_url"] == expected + "images/id1.jpg"


def test_the_datastore_hint_for_a_container_prefix_is_encoded_too():
    hint = datastore_prefix_hint("az://exports/my export/")
    assert hint is not None and "paths/my%20export/ " in hint


def test_rows_per_table_and_an_empty_table_is_warned_of():
    from cvbulk.cli._cmd_export import empty_tables

    images = [ExportedImage(f"id{i}", f"images/id{i}.jpg", 10, 20, ("cat",)) for i in range(3)]
    result = write_automl(images, "multiclass", MemorySink(), FormatOptions(validation_split=0.001))
    assert result.rows == {"train/train.jsonl": 3, "validation/validation.jsonl": 0}
    warned = empty_tables({"label_rows": result.rows, "images_in_project": 3})
    assert len(warned) == 1 and warned[0].startswith("warning: validation/validation.jsonl holds no image")
    assert empty_tables({"label_rows": {"train/train.jsonl": 0}, "images_in_project": 0}) == []  # an empty project
