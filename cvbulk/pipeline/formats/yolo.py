"""``yolo``: an Ultralytics YOLO detection dataset.

``data.yaml`` (``path: .``, ``train``/``val`` the ``images`` folder, ``nc``, ``names`` as an index map with
every name double-quoted: any tag text is a valid YAML scalar that way) and, for each image
``images/<name>.<ext>``, ``labels/<name>.txt`` with one ``class cx cy w h`` line per box (normalised,
written with full float precision). An image without boxes gets an empty label file (a YOLO background
image), so every image is carried.

YOLO label files hold boxes only: a classification project has nothing to put in them. ``yolo`` is for
detection projects; classification exports use ``folders`` (which is the Ultralytics classification layout,
one folder per class), ``automl`` or ``csv``. Metadata has no place in YOLO.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Sequence

from ._common import all_tags, unboxed, valid_labels
from .model import ExportedImage, FormatOptions, ProjectKind, Sink, WriteResult

__all__ = ["write_yolo", "yolo_label_path", "DATA_YAML"]

DATA_YAML = "data.yaml"


# Characters a double-quoted YAML scalar cannot hold literally (not printable, or a line break YAML folds)
_YAML_UNSAFE = re.compile("[^\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029\ufeff]")


def yaml_quoted(name: str) -> str:
    """``name`` as a double-quoted scalar that YAML (PyYAML, which Ultralytics uses) and JSON both read back
    exactly: characters outside the ASCII range written as themselves, not as ``\\u`` escapes (YAML reads
    each escape as one code point, so a JSON surrogate pair would become two lone surrogates), except those
    YAML cannot hold literally, which are escaped as ``\\uXXXX`` (all in the Basic Multilingual Plane)."""
    text = json.dumps(name, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def yolo_label_path(file: str) -> str | None:
    """Where Ultralytics looks for the labels of ``file``: its last ``images`` folder -> ``labels``, .txt."""
    parts = (posixpath.splitext(file)[0] + ".txt").split("/")
    if "images" not in parts[:-1]:
        return None
    at = len(parts) - 2 - parts[:-1][::-1].index("images")
    parts[at] = "labels"
    return "/".join(parts)


def write_yolo(
    images: Iterable[ExportedImage],
    kind: ProjectKind,
    sink: Sink,
    options: FormatOptions | None = None,
    *,
    tag_names: Sequence[str] = (),
) -> WriteResult:
    if kind != "detection":
        raise ValueError(
            "yolo holds boxes only: export a classification project as folders, automl or csv"
        )
    images = list(images)
    names = all_tags(images, tag_names)
    index = {n: i for i, n in enumerate(names)}
    result = WriteResult()
    for image in images:
        got = valid_labels(image)
        if isinstance(got, str):
            result.skipped.append((image.id, got))
            continue
        path = yolo_label_path(image.file)
        if path is None:
            result.skipped.append((image.id, f"{image.file!r} is not under an images/ folder"))
            continue
        tags, regions = got
        loose = unboxed(image.id, tags, regions, path)
        if loose is not None:
            result.dropped.append(loose)
        lines = [
            f"{index[r.tag]} {r.left + r.width / 2!r} {r.top + r.height / 2!r} {r.width!r} {r.height!r}\n"
            for r in regions
        ]
        sink.write_text(path, "".join(lines))
        result.carried += 1
    yaml = (
        "# Ultralytics YOLO detection dataset written by cvbulk\n"
        "path: .\ntrain: images\nval: images\n"
        f"nc: {len(names)}\nnames:\n" + "".join(f"  {i}: {yaml_quoted(n)}\n" for i, n in enumerate(names))
    )
    sink.write_text(DATA_YAML, yaml)
    result.files.append(DATA_YAML)
    return result
