"""The JSON label files: regions JSON (the quickstart's ``od_regions.json``) and COCO instances.

* regions JSON: ``{file: [{tag, left, top, width, height}, ...]}``, normalised coordinates; keys are
  relative paths, or bare file names that match that name in any folder; ``[]`` is an untagged image.
* COCO: ``images`` (``id``, ``file_name``, ``width``, ``height``), ``categories`` (``id``, ``name``) and
  ``annotations``; an annotation with a pixel ``bbox`` ``[x, y, w, h]`` is a region (normalised with the
  image's size and clamped to it); one without ``bbox`` is an image-level tag (what ``cvbulk export
  --format coco`` writes for a classification project). An image's ``metadata`` object (what ``cvbulk
  export`` writes) is its image metadata.

The file's structure is checked whole (:class:`LabelFileError`); a bad box or tag is its image's problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._base import (
    SPECIAL_TAG_TYPES,
    LabelFileError,
    LabelProblem,
    Labels,
    MappedLabels,
    RegionLabel,
    check_metadata,
    check_tag,
    load_json,
    make_region,
)

__all__ = ["RegionsJsonLabels", "CocoLabels", "is_coco"]


def is_coco(data: Any) -> bool:
    return isinstance(data, Mapping) and "images" in data and "annotations" in data


def _labels(tags: list[str], regions: list[RegionLabel], metadata: tuple[tuple[str, str], ...] = ()) -> Labels:
    return Labels(tuple(dict.fromkeys([*tags, *(r.tag for r in regions)])), tuple(regions), metadata)


class RegionsJsonLabels(MappedLabels):
    has_regions = True

    def __init__(self, path: str | os.PathLike[str], data: Any | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        name = self.path.name
        data = load_json(self.path) if data is None else data
        if not isinstance(data, Mapping):
            raise LabelFileError(f"{name}: expected an object mapping file names to lists of regions")
        for key, items in data.items():
            if not isinstance(items, list):
                raise LabelFileError(f"{name}: entry {key!r}: expected a list of regions")
            regions: list[RegionLabel] = []
            problem: str | None = None
            for i, item in enumerate(items, 1):
                where = f"{name}: entry {key!r} region {i}"
                if not isinstance(item, Mapping):
                    raise LabelFileError(f"{where}: expected an object with tag, left, top, width, height")
                missing = [k for k in ("tag", "left", "top", "width", "height") if k not in item]
                if missing:
                    raise LabelFileError(f"{where}: missing {missing[0]!r}")
                got = make_region(item["tag"], item["left"], item["top"], item["width"], item["height"])
                if isinstance(got, str):
                    problem = problem or f"region {i}: {got}"
                else:
                    regions.append(got)
            self._put(str(key), LabelProblem(problem) if problem else _labels([], regions), by_name=True)


class CocoLabels(MappedLabels):
    def __init__(self, path: str | os.PathLike[str], data: Any | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        name = self.path.name
        data = load_json(self.path) if data is None else data
        if not is_coco(data):
            raise LabelFileError(f"{name}: not a COCO instances file (no 'images' and 'annotations')")
        images_in, anns_in, cats_in = data["images"], data["annotations"], data.get("categories", [])
        for what, value in (("images", images_in), ("annotations", anns_in), ("categories", cats_in)):
            if not isinstance(value, list):
                raise LabelFileError(f"{name}: '{what}' must be a list")
        cats: dict[Any, str] = {}
        for i, c in enumerate(cats_in):
            if not isinstance(c, Mapping) or "id" not in c or "name" not in c:
                raise LabelFileError(f"{name}: categories[{i}]: expected an object with 'id' and 'name'")
            reason = check_tag(c["name"])
            if reason is not None:
                raise LabelFileError(f"{name}: categories[{i}] (id {c['id']!r}): {reason}")
            cats[_hashable(c["id"])] = c["name"]
            if c.get("supercategory") in SPECIAL_TAG_TYPES:  # as cvbulk export writes a Negative tag
                self._types[c["name"]] = c["supercategory"]
        images: dict[Any, tuple[str, Any, Any]] = {}
        metadata: dict[Any, tuple[tuple[str, str], ...] | str] = {}
        for i, img in enumerate(images_in):
            if not isinstance(img, Mapping):
                raise LabelFileError(f"{name}: images[{i}]: expected an object")
            for k in ("id", "file_name"):
                if k not in img:
                    raise LabelFileError(f"{name}: images[{i}]: missing {k!r}")
            if not isinstance(img["file_name"], str) or not img["file_name"]:
                raise LabelFileError(f"{name}: images[{i}]: 'file_name' must be a non-empty string")
            images[_hashable(img["id"])] = (img["file_name"], img.get("width"), img.get("height"))
            if img.get("metadata"):
                metadata[_hashable(img["id"])] = check_metadata(img["metadata"])
        tags: dict[Any, list[str]] = {k: [] for k in images}
        boxes: dict[Any, list[RegionLabel]] = {k: [] for k in images}
        problems: dict[Any, str] = {}
        for i, ann in enumerate(anns_in):
            where = f"{name}: annotations[{i}]"
            if not isinstance(ann, Mapping):
                raise LabelFileError(f"{where}: expected an object")
            for k in ("image_id", "category_id"):
                if k not in ann:
                    raise LabelFileError(f"{where}: missing {k!r}")
            image_id, cat_id = _hashable(ann["image_id"]), _hashable(ann["category_id"])
            if image_id not in images:
                raise LabelFileError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
            if cat_id not in cats:
                raise LabelFileError(f"{where}: category_id {ann['category_id']!r} is not in 'categories'")
            tag = cats[cat_id]
            if "bbox" not in ann:
                if tag not in tags[image_id]:
                    tags[image_id].append(tag)
                continue
            self.has_regions = True
            got = self._region(tag, ann["bbox"], images[image_id])
            if isinstance(got, str):
                problems.setdefault(image_id, f"annotations[{i}]: {got}")
            else:
                boxes[image_id].append(got)
        merged: dict[str, LabelProblem | Labels] = {}
        for image_id, (file_name, _, _) in images.items():
            result: Labels | LabelProblem
            meta = metadata.get(image_id, ())
            if image_id in problems:
                result = LabelProblem(problems[image_id])
            elif isinstance(meta, str):
                result = LabelProblem(meta)
            else:
                result = _labels(tags[image_id], boxes[image_id], meta)
            before = merged.get(file_name)
            if isinstance(before, Labels) and isinstance(result, Labels):  # one file listed twice: merge
                result = _labels([*before.tags, *result.tags], [*before.regions, *result.regions],
                                 tuple(sorted(dict([*before.metadata, *result.metadata]).items())))
            elif isinstance(before, LabelProblem):
                result = before
            merged[file_name] = result
        for file_name, result in merged.items():
            self._put(file_name, result, by_name=True)
        info = data.get("info")
        if isinstance(info, Mapping) and info.get("cvbulk_kind") == "detection":
            self.has_regions = True  # ours, from a detection project (even one without a box yet)
        # A category without an annotation is still a tag the project should have.
        self._tags.update(cats.values())

    @staticmethod
    def _region(tag: str, bbox: Any, image: tuple[str, Any, Any]) -> RegionLabel | str:
        if not isinstance(bbox, list) or len(bbox) != 4:
            return "bbox must be [x, y, width, height]"
        _, w, h = image
        if isinstance(w, bool) or isinstance(h, bool) or not isinstance(w, (int, float)) \
                or not isinstance(h, (int, float)) or not w > 0 or not h > 0:
            return f"the image's width and height must be positive numbers to place a box (got {w!r} x {h!r})"
        for v in bbox:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"bbox value {v!r} is not a number"
        x, y, bw, bh = bbox
        # Pixel boxes that stick out of the image are clamped (many tools round outwards).
        return make_region(tag, x / w, y / h, bw / w, bh / h, strict_range=False)


def _hashable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else repr(v)
