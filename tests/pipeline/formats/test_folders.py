"""Folder names safe in length, characters and reserved names, unique, and reversible."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cvbulk.pipeline.formats import FolderLayout, LocalSink, safe_folder_name, write_labels
from cvbulk.pipeline.formats.model import ExportedImage
from cvbulk.pipeline.labels import FOLDER_MAP_FILE, open_label_source


@pytest.mark.parametrize("tag", ["Hemlock", "Japanese Cherry", "naïve", "a~b", "x" * 255])
def test_safe_tags_are_their_own_folder(tag: str) -> None:
    assert safe_folder_name(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["a/b", "a\\b", "a:b", 'a"b', "a*b", "a?b", "a<b>", "a|b", "tab\there", ".hidden", "..", ".", "dot.",
     "space ", " lead", "CON", "con.txt", "LPT1", "", "x" * 256, "é" * 200, "日本" * 60, "bad\udcffname"],
)
def test_unsafe_tags_get_a_safe_unique_folder(tmp_path: Path, tag: str) -> None:
    name = safe_folder_name(tag)
    assert name != tag and name.strip() == name and not name.startswith(".") and not name.endswith(".")
    assert len(name.encode("utf-8")) <= 255
    assert not set('/\\:*?"<>|\t') & set(name)
    (tmp_path / name).mkdir()  # the file system takes it


def test_long_multibyte_tags_are_cut_on_a_character_boundary() -> None:
    name = safe_folder_name("é" * 200)
    name.encode("utf-8")  # no half character
    assert name.startswith("é" * 100) and len(name.encode("utf-8")) <= 255


def test_clashing_tags_get_distinct_folders_the_same_on_every_run() -> None:
    tags = ["a/b", "a:b", "a_b", "Cat", "cat", "CAT", "x" * 300, "x" * 301]
    layout = FolderLayout(tags)
    folders = [layout.folder(t) for t in tags]
    assert len({f.casefold() for f in folders}) == len(tags)
    assert FolderLayout(reversed(tags)).folders == layout.folders


def test_the_mapping_file_gives_every_tag_back(tmp_path: Path) -> None:
    tags = ["a/b", "a:b", "Cat", "cat", "x" * 256, "CON", "ok"]
    layout = FolderLayout(tags)
    images = [ExportedImage(f"id{i}", layout.image_path(f"id{i}.jpg", (t,)), tags=(t,)) for i, t in enumerate(tags)]
    images.append(ExportedImage("loose", layout.image_path("loose.jpg", ()), tags=()))
    write_labels("folders", images, "multiclass", LocalSink(tmp_path), layout=layout, tag_names=tags)
    for im in images:
        p = tmp_path / im.file
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    mapping = json.loads((tmp_path / FOLDER_MAP_FILE).read_text(encoding="utf-8"))["cvbulk_folder_tags"]
    assert "ok" not in mapping.values() and set(mapping.values()) == set(tags) - {"ok"}
    source = open_label_source("folders", tmp_path)
    assert sorted(source.tag_names()) == sorted(tags)
    for im in images[:-1]:
        got = source.labels_for(im.file)
        assert got is not None and got.tags == im.tags  # type: ignore[union-attr]
    assert source.labels_for("loose.jpg") is None
    assert len(os.listdir(tmp_path)) == len(tags) + 3  # folders + loose image + labels.csv + the map
