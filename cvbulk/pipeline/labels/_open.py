"""``open_label_source(spec, root)``: the reader a ``--labels`` value names."""

from __future__ import annotations

import os
from pathlib import Path

from ._base import LabelFileError, LabelSource, load_json
from .automl import AutoMLLabels
from .csv_manifest import CsvLabels
from .folders import FolderLabels
from .jsonfiles import CocoLabels, RegionsJsonLabels, is_coco
from .yolo import YoloLabels

__all__ = ["open_label_source"]


def open_label_source(spec: str, root: str | os.PathLike[str]) -> LabelSource:
    """``"folders"``, or the path of a ``.csv`` manifest, an AutoML ``.jsonl``, a regions or COCO ``.json``,
    a YOLO ``data.yaml`` or a YOLO labels folder. A relative path not found from the current folder is
    looked for under ROOT."""
    if spec == "folders":
        return FolderLabels(root)
    path = Path(spec)
    if not path.exists() and not path.is_absolute() and (Path(root) / spec).exists():
        path = Path(root) / spec  # a label file kept inside the tree, named relative to it
    if not path.exists():
        raise LabelFileError(f"{path.name}: label file not found ({spec})")
    if path.is_dir():
        return YoloLabels(path, root)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvLabels(path, root)
    if suffix == ".jsonl":
        return AutoMLLabels(path)
    if suffix in (".yaml", ".yml"):
        return YoloLabels(path, root)
    if suffix == ".json":
        data = load_json(path)
        if is_coco(data):
            return CocoLabels(path, data)
        return RegionsJsonLabels(path, data)
    raise LabelFileError(
        f"{path.name}: unknown label source (use 'folders', a .csv manifest, an AutoML .jsonl, a regions or "
        "COCO .json, a YOLO data.yaml or labels folder)"
    )
