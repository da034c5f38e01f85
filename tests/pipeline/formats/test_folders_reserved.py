"""A tag named like a file the folders export writes beside the tag folders (model.json, labels.csv,
cvbulk-folders.json, regions.json; any case, a case-insensitive disk being common) gets a folder of another
name: the export wrote the tag's folder first and then failed on its own label file ("Is a directory")."""

from __future__ import annotations

from pathlib import Path

from cvbulk.pipeline.formats import ExportedImage, FolderLayout, LocalSink, write_folders, write_model_json
from cvbulk.pipeline.labels.folders import FolderLabels

TAGS = ["model.json", "Labels.CSV", "cvbulk-folders.json", "regions.json", "plain"]
RESERVED = {"model.json", "labels.csv", "cvbulk-folders.json", "regions.json"}


PROJECT = {"id": "p1", "name": "clash", "settings": {"domainId": "DOM-1"}}


def test_a_tag_named_like_an_export_file_gets_another_folder(tmp_path: Path) -> None:
    layout = FolderLayout(TAGS)
    assert not {layout.folder(t).casefold() for t in TAGS} & RESERVED
    images = []
    for i, tag in enumerate(TAGS):
        file = layout.image_path(f"{i:032x}.jpg", (tag,))
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_bytes(b"x")
        images.append(ExportedImage(f"{i:032x}", file, 10, 10, (tag,)))
    sink = LocalSink(tmp_path)
    write_folders(images, "detection", sink, layout=layout, tag_names=TAGS)
    write_model_json(sink, PROJECT, [], domains={})
    assert all((tmp_path / name).is_file() for name in ("labels.csv", "cvbulk-folders.json", "regions.json", "model.json"))
    back = FolderLabels(tmp_path)  # the folder map gives every tag back
    for image, tag in zip(images, TAGS):
        got = back.labels_for(image.file)
        assert got is not None and getattr(got, "tags", None) == (tag,), (image.file, got)
