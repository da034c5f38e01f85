"""Label sources: where an image's tags (and, for detection, its regions) come from.

``open_label_source(spec, root)`` gives a :class:`LabelSource` whose ``labels_for(relpath)`` answers
:class:`Labels`, a :class:`LabelProblem` (this image's labels are unusable: it alone is rejected) or None
(the source says nothing about it). :func:`decide` applies THE rule for untagged and unlabelled images.
The readers:

* ``folders`` (:mod:`.folders`), a CSV manifest (:mod:`.csv_manifest`, tags cell per :mod:`.tagcell`),
* a regions JSON or COCO (:mod:`.jsonfiles`), Azure ML AutoML JSONL (:mod:`.automl`), YOLO (:mod:`.yolo`).

A malformed label file is a configuration error: :class:`LabelFileError` (a ``ValueError``) names the file
and the line or entry at fault, and stops the run before anything is sent.
"""

from __future__ import annotations

from ._base import (
    MAX_TAG_LENGTH,
    NO_LABEL,
    UNTAGGED,
    LabelFileError,
    LabelProblem,
    Labels,
    LabelSource,
    RegionLabel,
    check_tag,
    decide,
    make_region,
    tag_types,
)
from ._open import open_label_source
from .automl import AutoMLLabels
from .csv_manifest import CsvLabels
from .folders import FOLDER_MAP_FILE, FolderLabels
from .jsonfiles import CocoLabels, RegionsJsonLabels
from .yolo import YoloLabels

__all__ = [
    "RegionLabel",
    "Labels",
    "LabelProblem",
    "LabelSource",
    "LabelFileError",
    "FolderLabels",
    "CsvLabels",
    "RegionsJsonLabels",
    "CocoLabels",
    "AutoMLLabels",
    "YoloLabels",
    "open_label_source",
    "decide",
    "tag_types",
    "check_tag",
    "make_region",
    "MAX_TAG_LENGTH",
    "NO_LABEL",
    "UNTAGGED",
    "FOLDER_MAP_FILE",
]
