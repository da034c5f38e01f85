"""The "back into a project" line an export ends with: a command that works as printed."""

from __future__ import annotations

import shlex

from cvbulk.pipeline.export import ExportOptions, _upload_hint


def test_automl_with_a_validation_split_names_both_label_files_and_no_untagged(tmp_path):
    # --untagged with train.jsonl alone would upload every validation image untagged
    options = ExportOptions(project="p", out_dir="az://exports/aml", format="automl", validation_split=0.2)
    hint = _upload_hint(options, ["train/train.jsonl", "validation/validation.jsonl"])
    assert "--untagged" not in hint
    assert "--labels az://exports/aml/train/train.jsonl" in hint and "--labels az://exports/aml/validation/validation.jsonl" in hint


def test_a_location_with_spaces_is_quoted(tmp_path):
    options = ExportOptions(project="p", out_dir=tmp_path / "my export", format="csv")
    hint = _upload_hint(options, ["labels.csv"])
    words = shlex.split(hint)
    assert words[:3] == ["cvbulk", "upload", str(tmp_path / "my export")]
    assert words[words.index("--labels") + 1] == str(tmp_path / "my export" / "labels.csv")


def test_yolo_exported_into_a_container_is_uploaded_back_from_a_downloaded_folder():
    # a container run does not read YOLO's per-image label files: the hint downloads first, then uploads the folder
    options = ExportOptions(project="p", out_dir="az://exports/cut-yolo", format="yolo")
    hint = _upload_hint(options, ["data.yaml"])
    assert hint.startswith("YOLO labels (a .txt file per image) are read from a folder on this machine")
    assert "az storage blob download-batch -s exports --pattern 'cut-yolo/*' -d FOLDER" in hint
    assert "cvbulk upload FOLDER/cut-yolo/ --project NEW --create --untagged --labels FOLDER/cut-yolo/data.yaml" in hint
