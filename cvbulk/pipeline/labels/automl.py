"""Azure ML AutoML for images JSONL (multi-class, multi-label, object detection; instance segmentation is read
as the bounding box of each polygon).

One JSON object a line: ``image_url`` (``azureml://.../paths/<path>``, ``AmlDatastore://<path>``, an
``https://`` blob URL or a path relative to the export root), ``image_details`` (ignored: the image has its
own size) and ``label``: a string (multi-class), a list of strings (multi-label) or a list of boxes
``{label, topX, topY, bottomX, bottomY, isCrowd}`` normalised (detection; ``isCrowd`` has no Custom Vision
counterpart and is ignored). ``label: []`` is an image with no tag (a background image in detection).

An ``image_url`` is matched to a file under ROOT by its path tail: ROOT may be the folder that was uploaded
to ``.../paths/<folder>/`` (``images/x.jpg`` matches ``.../paths/<folder>/images/x.jpg``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ._base import (
    LabelFileError,
    LabelProblem,
    Labels,
    MappedLabels,
    RegionLabel,
    check_tag,
    make_region,
    open_label_text,
)

__all__ = ["AutoMLLabels", "url_key", "looks_like_automl"]


def looks_like_automl(first_line: str) -> bool:
    try:
        obj = json.loads(first_line)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, Mapping) and "image_url" in obj


def url_key(url: str) -> str:
    """The datastore path an ``image_url`` names: what a relpath under ROOT is the tail of."""
    if "://" not in url:
        parts = [p for p in url.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        return "/".join(parts)
    if url.lower().startswith("azureml://"):
        at = url.find("/paths/")
        rest = url[at + len("/paths/"):] if at >= 0 else url[len("azureml://"):]
        return unquote(rest).strip("/")
    split = urlsplit(url)
    path = unquote(split.path).lstrip("/")
    if split.scheme.lower() in ("http", "https"):
        return path  # the container is the first component; tail matching makes it harmless
    return f"{split.netloc}/{path}".strip("/")  # AmlDatastore://<folder>/<file>: the host is a folder


class AutoMLLabels(MappedLabels):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(tails=True)
        self.path = Path(path)
        name = self.path.name
        kinds: set[str] = set()
        results: dict[str, Labels | LabelProblem] = {}
        with open_label_text(self.path) as fh:
            for n, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                key, kind, result = self._line(name, n, text)
                if kind:
                    kinds.add(kind)
                before = results.get(key)
                if isinstance(before, Labels) and isinstance(result, Labels):
                    result = Labels(
                        tuple(dict.fromkeys([*before.tags, *result.tags])), before.regions + result.regions
                    )
                elif isinstance(before, LabelProblem):
                    result = before
                results[key] = result
        if len(kinds) > 1:
            raise LabelFileError(
                f"{name}: mixes label kinds ({', '.join(sorted(kinds))}): one file is one kind of project"
            )
        self.kind = next(iter(kinds), None)  # multiclass | multilabel | detection | None (all empty)
        self.has_regions = self.kind == "detection"
        for key, result in results.items():
            self._put(key, result)

    @staticmethod
    def _line(name: str, n: int, text: str) -> tuple[str, str | None, Labels | LabelProblem]:
        where = f"{name}: line {n}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LabelFileError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise LabelFileError(f"{where}: the JSON is nested too deeply to be a label line") from None
        if not isinstance(obj, Mapping):
            raise LabelFileError(f"{where}: expected an object with 'image_url' and 'label'")
        url = obj.get("image_url")
        if not isinstance(url, str) or not url.strip():
            raise LabelFileError(f"{where}: 'image_url' must be a non-empty string")
        key = url_key(url)
        if not key:
            raise LabelFileError(f"{where}: 'image_url' {url!r} names no file")
        if "label" not in obj:
            raise LabelFileError(f"{where}: missing 'label'")
        label = obj["label"]
        if isinstance(label, str):
            reason = check_tag(label)
            return key, "multiclass", LabelProblem(reason) if reason else Labels((label,))
        if not isinstance(label, list):
            raise LabelFileError(f"{where}: 'label' must be a string or a list")
        if not label:
            return key, None, Labels(())
        if all(isinstance(x, str) for x in label):
            reason = next((r for r in map(check_tag, label) if r is not None), None)
            return key, "multilabel", LabelProblem(reason) if reason else Labels(tuple(dict.fromkeys(label)))
        if not all(isinstance(x, Mapping) for x in label):
            raise LabelFileError(f"{where}: 'label' must be all strings or all boxes")
        regions: list[RegionLabel] = []
        for i, box in enumerate(label, 1):
            got = _box(box)
            if isinstance(got, str):
                return key, "detection", LabelProblem(f"box {i}: {got}")
            regions.append(got)
        return key, "detection", Labels(tuple(dict.fromkeys(r.tag for r in regions)), tuple(regions))


def _box(box: Mapping[str, Any]) -> RegionLabel | str:
    tag = box.get("label")
    if "polygon" in box and "topX" not in box:
        return _polygon_box(tag, box["polygon"])
    missing = [k for k in ("label", "topX", "topY", "bottomX", "bottomY") if k not in box]
    if missing:
        return f"missing {missing[0]!r}"
    x0, y0, x1, y1 = (box[k] for k in ("topX", "topY", "bottomX", "bottomY"))
    for v in (x0, y0, x1, y1):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"coordinate {v!r} is not a number"
    return make_region(tag, x0, y0, x1 - x0, y1 - y0)


def _polygon_box(tag: Any, polygon: Any) -> RegionLabel | str:
    xs: list[float] = []
    ys: list[float] = []
    segments = polygon if isinstance(polygon, list) else []
    for seg in segments:
        if not isinstance(seg, list) or len(seg) < 6 or len(seg) % 2:
            return "a polygon must be lists of x, y pairs (at least three points)"
        for v in seg:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"polygon coordinate {v!r} is not a number"
        xs.extend(seg[0::2])
        ys.extend(seg[1::2])
    if not xs:
        return "an empty polygon"
    return make_region(tag, min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
