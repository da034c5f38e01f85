"""The AutoML for images JSONL line schema, written from the Azure ML page "Data schemas to train computer
vision models with automated machine learning" (training section), and a small validator for it.

No jsonschema dependency: the validator understands the handful of keywords these schemas use (``type``,
``required``, ``properties``, ``additionalProperties``, ``items``, ``enum``, ``minimum``, ``maximum``,
``minLength``, ``pattern``, ``anyOf``). What the page says and a schema cannot (a box's top-left corner is
above and left of its bottom-right one) is checked after the schema.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["IMAGE_FORMATS", "SCHEMAS", "validate", "validate_line"]

# "Optional, String from {...}" on the page.
IMAGE_FORMATS = ("jpg", "jpeg", "png", "jpe", "jfif", "bmp", "tif", "tiff")

_SIZE = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^[1-9][0-9]*(px)?$"}]}
_RATIO = {"type": "number", "minimum": 0, "maximum": 1}
_COMMON: dict[str, Any] = {
    "image_url": {"type": "string", "minLength": 1},
    "image_details": {
        "type": "object",
        "properties": {"format": {"enum": list(IMAGE_FORMATS)}, "width": _SIZE, "height": _SIZE},
        "additionalProperties": False,
    },
}
_BOX = {
    "type": "object",
    "required": ["label", "topX", "topY", "bottomX", "bottomY"],
    "properties": {
        "label": {"type": "string", "minLength": 1},
        "topX": _RATIO, "topY": _RATIO, "bottomX": _RATIO, "bottomY": _RATIO,
        "isCrowd": {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]},
    },
    "additionalProperties": False,
}


def _line(label: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["image_url", "label"],
        "properties": {**_COMMON, "label": label},
        "additionalProperties": False,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "multiclass": _line({"type": "string", "minLength": 1}),
    "multilabel": _line({"type": "array", "items": {"type": "string", "minLength": 1}}),
    "detection": _line({"type": "array", "items": _BOX}),
}

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
}


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: what`` strings (empty when it is valid)."""
    errors: list[str] = []
    if "anyOf" in schema:
        if all(validate(value, s, where) for s in schema["anyOf"]):
            errors.append(f"{where}: {value!r} matches none of the allowed forms")
        return errors
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        return [f"{where}: expected {kind}, got {type(value).__name__} {value!r}"]
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        errors.append(f"{where}: shorter than {schema['minLength']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        errors.append(f"{where}: {value!r} is below {schema['minimum']}")
    if "maximum" in schema and isinstance(value, (int, float)) and value > schema["maximum"]:
        errors.append(f"{where}: {value!r} is above {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                errors += validate(v, props[k], f"{where}.{k}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{where}: unexpected key {k!r}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += validate(v, schema["items"], f"{where}[{i}]")
    return errors


def validate_line(obj: Any, kind: str) -> list[str]:
    """Schema errors of one JSONL line for a project of ``kind``, plus the box geometry the page implies."""
    errors = validate(obj, SCHEMAS[kind])
    if not errors and kind == "detection":
        for i, box in enumerate(obj["label"]):
            if not (box["topX"] < box["bottomX"] and box["topY"] < box["bottomY"]):
                errors.append(f"$.label[{i}]: the top-left corner must be above and left of the bottom-right")
    return errors
