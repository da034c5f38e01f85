"""``automl``: Azure ML AutoML for images JSONL + MLTable, per the "Data schemas to train computer vision models
with automated machine learning" page.

Layout under the export root: ``train/MLTable`` + ``train/train.jsonl`` and, with a validation split,
``validation/MLTable`` + ``validation/validation.jsonl`` (a deterministic split by a hash of the image id).
Each MLTable reads its JSONL next to it and makes ``image_url`` a ``stream_info`` column, as the page's
sample does. ``image_url`` is ``prefix + file``: with ``image_url_prefix`` (the
``azureml://subscriptions/.../datastores/<ds>/paths/<folder>/`` the export root is uploaded to) a full
datastore URL, which is what AutoML trains from; without it, the path relative to the export root.

What each kind writes, and what is left out (each left-out image is in ``WriteResult.skipped`` with why):

* multi-class: ``label`` is the image's one tag. A Negative-type tag is kept as a class of its own (AutoML
  has no negative images in classification; the class keeps the images and their meaning, and the round
  trip gives them back). An untagged image is left out: the page makes ``label`` required, and Custom
  Vision does not train on untagged images either. An image with several tags cannot be multi-class.
* multi-label: ``label`` is the list of the image's tags (Negative kept, as above). Untagged: left out,
  unless ``include_untagged`` (then ``label: []``, "none of the classes").
* detection: ``label`` is the list of boxes ``{label, topX, topY, bottomX, bottomY, isCrowd: 0}``. An image
  without boxes is left out unless ``include_untagged`` (then ``label: []``, a background image; the page
  does not say AutoML accepts an empty list, so it is opt-in).

``image_details`` carries ``format`` (when it is one the page lists) and the size in pixels. Image metadata
has no place in this schema and is not written (``model.json``/COCO carry it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from urllib.parse import quote

from ._common import dumps, in_validation, unboxed, valid_labels
from .automl_schema import IMAGE_FORMATS
from .model import ExportedImage, FormatOptions, ProjectKind, Sink, WriteResult, image_format

__all__ = ["write_automl", "mltable_text", "automl_line", "datastore_prefix_hint", "url_prefix", "TRAIN_DIR",
           "VALIDATION_DIR"]

TRAIN_DIR = "train"
VALIDATION_DIR = "validation"


_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_URL_SAFE = "/:@!$&'()*+,;=~-._%"  # a URL path's own characters, and the escapes already written


def url_prefix(prefix: str) -> str:
    """``prefix`` as the start of a URL path ending in exactly one slash: what a URL cannot hold (a space, ``#``,
    ``?``, a ``%`` that is no escape, text outside ASCII) percent-encoded as UTF-8; escapes already written kept."""
    text = _LONE_PERCENT.sub("%25", prefix.rstrip("/"))
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    return f"{scheme}{sep}{quote(rest, safe=_URL_SAFE)}/"


def datastore_prefix_hint(location: str) -> str | None:
    """For an export into a container without ``image_url_prefix``: the ``--image-url-prefix`` that makes its
    ``image_url`` full datastore paths (AutoML resolves no relative ones), for a datastore on that container
    (its name unknown here: ``<DATASTORE>``), and the container's name; None for a local folder."""
    from ...storage import LocationError, parse_location

    try:
        where = parse_location(location)
    except LocationError:
        return None
    if not where.is_blob:
        return None
    path = url_prefix(where.prefix) if where.prefix.strip("/") else ""
    return (f"--image-url-prefix azureml://datastores/<DATASTORE>/paths/{path} (<DATASTORE>: the "
            f"Azure ML datastore of container {where.container!r})")


def mltable_text(jsonl_name: str) -> str:
    return (
        "paths:\n"
        f"  - file: ./{jsonl_name}\n"
        "transformations:\n"
        "  - read_json_lines:\n"
        "      encoding: utf8\n"
        "      invalid_lines: error\n"
        "      include_path_column: false\n"
        "  - convert_column_types:\n"
        "      - columns: image_url\n"
        "        column_type: stream_info\n"
    )


def automl_line(image: ExportedImage, kind: ProjectKind, options: FormatOptions) -> dict | str:
    """The JSONL object for one image, or the reason it cannot have one."""
    got = valid_labels(image)
    if isinstance(got, str):
        return got
    tags, regions = got
    label: object
    if kind == "multiclass":
        if not tags:
            return "untagged: an AutoML multi-class row needs a label"
        if len(tags) > 1:
            return f"{len(tags)} tags on an image of a multi-class project"
        label = tags[0]
    elif kind == "multilabel":
        if not tags and not options.include_untagged:
            return "untagged: left out of AutoML multi-label (include_untagged writes it with label [])"
        label = list(tags)
    else:
        if not regions and not options.include_untagged:
            return "no boxes: left out of AutoML detection (include_untagged writes it with label [])"
        label = [
            # min(): left + width of a box clamped to the edge may round to 1.0000000000000002
            {"label": r.tag, "topX": r.left, "topY": r.top, "bottomX": min(1.0, r.left + r.width),
             "bottomY": min(1.0, r.top + r.height), "isCrowd": 0}
            for r in regions
        ]
    obj: dict = {"image_url": (options.image_url_prefix or "") + image.file}
    details: dict = {}
    fmt = image_format(image.file)
    if fmt in IMAGE_FORMATS:
        details["format"] = fmt
    if image.width:
        details["width"] = image.width
    if image.height:
        details["height"] = image.height
    if details:
        obj["image_details"] = details
    obj["label"] = label
    return obj  # valid by construction; tests validate every line against automl_schema


def write_automl(
    images: Iterable[ExportedImage], kind: ProjectKind, sink: Sink, options: FormatOptions | None = None
) -> WriteResult:
    options = options or FormatOptions()
    prefix = options.image_url_prefix
    if prefix:  # joined to the image's path with one slash, as a URL
        options = dataclasses.replace(options, image_url_prefix=url_prefix(prefix))
    result = WriteResult()
    lines: dict[str, list[str]] = {TRAIN_DIR: [], VALIDATION_DIR: []}
    for image in images:
        obj = automl_line(image, kind, options)
        if isinstance(obj, str):
            result.skipped.append((image.id, obj))
            continue
        side = VALIDATION_DIR if in_validation(image.id, options.validation_split) else TRAIN_DIR
        if kind == "detection":
            got = valid_labels(image)
            loose = unboxed(image.id, *got, f"{side}/{side}.jsonl") if not isinstance(got, str) else None
            if loose is not None:
                result.dropped.append(loose)
        lines[side].append(dumps(obj))
        result.carried += 1
    for side in (TRAIN_DIR, VALIDATION_DIR):
        if side == VALIDATION_DIR and options.validation_split <= 0:
            continue
        jsonl = f"{side}.jsonl"
        sink.write_text(f"{side}/{jsonl}", "".join(line + "\n" for line in lines[side]))
        sink.write_text(f"{side}/MLTable", mltable_text(jsonl))
        result.files += [f"{side}/{jsonl}", f"{side}/MLTable"]
        result.rows[f"{side}/{jsonl}"] = len(lines[side])
    return result
