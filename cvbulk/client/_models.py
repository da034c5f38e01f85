"""Dataclasses named after the schemas of Training v3.3 / Prediction v3.0.

``from_json`` maps camelCase keys to snake_case attributes through one precomputed table per class (this
runs on the hot path: a 64-image create summary per batch), keeps unknown keys in ``extra``, and leaves
datetimes as the service's ISO strings. ``to_json`` is the inverse. Lists become tuples.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, TypeVar

__all__ = [
    "Domain", "Project", "ProjectSettings", "Tag", "Image", "ImageTag", "ImageRegion", "Region",
    "ImageCreateResult", "ImageCreateSummary", "ImageFileCreateEntry", "ImageUrlCreateEntry",
    "ImageRegionCreateEntry", "ImageRegionCreateResult", "ImageRegionCreateSummary", "ImageTagCreateEntry",
    "ImageTagCreateSummary", "Iteration", "IterationPerformance", "TagPerformance", "ImagePrediction",
    "Prediction", "BoundingBox", "ProjectExport",
]

M = TypeVar("M", bound="_Model")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Model:
    """Shared from_json / to_json over the wire table that ``_wire`` attaches to each class."""

    __slots__ = ()
    _wire_in: dict[str, tuple[str, Callable[[Any], Any] | None]]
    _wire_out: tuple[tuple[str, str, Callable[[Any], Any] | None], ...]

    @classmethod
    def from_json(cls: type[M], data: Mapping[str, Any]) -> M:
        wire = cls._wire_in
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] | None = None
        for key, value in data.items():
            spec = wire.get(key)
            if spec is None:
                if extra is None:
                    extra = {}
                extra[key] = value
                continue
            attr, parse = spec
            kwargs[attr] = parse(value) if parse is not None and value is not None else value
        if extra is not None:
            kwargs["extra"] = extra
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, attr, dump in self._wire_out:
            value = getattr(self, attr)
            if value is None:
                continue
            out[key] = dump(value) if dump is not None else value
        extra = getattr(self, "extra", None)
        if extra:
            for key, value in extra.items():
                out.setdefault(key, value)
        return out


def _wire(renames: Mapping[str, str] | None = None, **codecs: tuple) -> Callable[[type[M]], type[M]]:
    """Build the class's camelCase table; ``codecs[attr] = (parse, dump)`` for nested or encoded fields."""

    def attach(cls: type[M]) -> type[M]:
        wire_in = {}
        wire_out = []
        for f in fields(cls):
            if f.name == "extra":
                continue
            key = (renames or {}).get(f.name) or _camel(f.name)
            parse, dump = codecs.get(f.name, (None, None))
            wire_in[key] = (f.name, parse)
            wire_out.append((key, f.name, dump))
        cls._wire_in = wire_in
        cls._wire_out = tuple(wire_out)
        return cls

    return attach


def _one(model: type[_Model]) -> tuple:
    return (model.from_json, lambda value: value.to_json())


def _many(model: type[_Model]) -> tuple:
    parse = model.from_json
    return (
        lambda values: tuple([parse(v) for v in values]),
        lambda values: [v.to_json() for v in values],
    )


_STRINGS = (tuple, list)
_BASE64 = (base64.b64decode, lambda raw: base64.b64encode(raw).decode("ascii"))


def _extra() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


@_wire()
@dataclass(slots=True)
class Domain(_Model):
    id: str | None = None
    name: str | None = None
    type: str | None = None  # Classification | ObjectDetection
    exportable: bool | None = None
    enabled: bool | None = None
    extra: dict[str, Any] = _extra()


@_wire(target_export_platforms=_STRINGS)
@dataclass(slots=True)
class ProjectSettings(_Model):
    domain_id: str | None = None
    classification_type: str | None = None  # Multiclass | Multilabel
    target_export_platforms: tuple[str, ...] | None = None
    use_negative_set: bool | None = None
    detection_parameters: str | None = None
    image_processing_settings: dict[str, Any] | None = None
    extra: dict[str, Any] = _extra()


@_wire(settings=_one(ProjectSettings))
@dataclass(slots=True)
class Project(_Model):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    settings: ProjectSettings | None = None
    created: str | None = None
    last_modified: str | None = None
    thumbnail_uri: str | None = None
    dr_mode_enabled: bool | None = None
    status: str | None = None  # Succeeded | Importing | Failed
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class Tag(_Model):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    type: str | None = None  # Regular | Negative | GeneralProduct
    image_count: int | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageTag(_Model):
    tag_id: str | None = None
    tag_name: str | None = None
    created: str | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageRegion(_Model):
    region_id: str | None = None
    tag_name: str | None = None
    created: str | None = None
    tag_id: str | None = None
    left: float | None = None
    top: float | None = None
    width: float | None = None
    height: float | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class Region(_Model):
    """A normalised (0..1) box with its tag, as sent in create-image entries."""

    tag_id: str
    left: float
    top: float
    width: float
    height: float
    extra: dict[str, Any] = _extra()


@_wire(tags=_many(ImageTag), regions=_many(ImageRegion))
@dataclass(slots=True)
class Image(_Model):
    id: str | None = None
    created: str | None = None
    width: int | None = None
    height: int | None = None
    resized_image_uri: str | None = None
    thumbnail_uri: str | None = None
    original_image_uri: str | None = None
    tags: tuple[ImageTag, ...] | None = None
    regions: tuple[ImageRegion, ...] | None = None
    metadata: dict[str, str] | None = None
    extra: dict[str, Any] = _extra()


@_wire(image=_one(Image))
@dataclass(slots=True)
class ImageCreateResult(_Model):
    source_url: str | None = None
    status: str | None = None  # OK, OKDuplicate, ErrorImageFormat, ...
    image: Image | None = None
    extra: dict[str, Any] = _extra()

    @property
    def ok(self) -> bool:
        """True for OK and OKDuplicate (the image is in the project)."""
        return self.status in ("OK", "OKDuplicate")

    @property
    def source_name(self) -> str | None:
        """``source_url`` without the literal quotes the service puts around uploaded file names."""
        src = self.source_url
        if src and len(src) >= 2 and src[0] == '"' and src[-1] == '"':
            return src[1:-1]
        return src


@_wire(images=_many(ImageCreateResult))
@dataclass(slots=True)
class ImageCreateSummary(_Model):
    is_batch_successful: bool | None = None
    images: tuple[ImageCreateResult, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire(tag_ids=_STRINGS, regions=_many(Region), contents=_BASE64)
@dataclass(slots=True)
class ImageFileCreateEntry(_Model):
    """One image of CreateImagesFromFiles; ``contents`` are raw bytes (base64 on the wire)."""

    name: str | None
    contents: bytes
    tag_ids: tuple[str, ...] | list[str] = ()
    regions: tuple[Region, ...] | list[Region] = ()
    extra: dict[str, Any] = _extra()


@_wire(tag_ids=_STRINGS, regions=_many(Region))
@dataclass(slots=True)
class ImageUrlCreateEntry(_Model):
    url: str
    tag_ids: tuple[str, ...] | list[str] = ()
    regions: tuple[Region, ...] | list[Region] = ()
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageRegionCreateEntry(_Model):
    image_id: str
    tag_id: str
    left: float
    top: float
    width: float
    height: float
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageRegionCreateResult(_Model):
    image_id: str | None = None
    region_id: str | None = None
    tag_name: str | None = None
    created: str | None = None
    tag_id: str | None = None
    left: float | None = None
    top: float | None = None
    width: float | None = None
    height: float | None = None
    extra: dict[str, Any] = _extra()


@_wire(
    created=_many(ImageRegionCreateResult),
    duplicated=_many(ImageRegionCreateEntry),
    exceeded=_many(ImageRegionCreateEntry),
)
@dataclass(slots=True)
class ImageRegionCreateSummary(_Model):
    created: tuple[ImageRegionCreateResult, ...] = ()
    duplicated: tuple[ImageRegionCreateEntry, ...] = ()
    exceeded: tuple[ImageRegionCreateEntry, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageTagCreateEntry(_Model):
    image_id: str | None = None
    tag_id: str | None = None
    extra: dict[str, Any] = _extra()


@_wire(
    created=_many(ImageTagCreateEntry),
    duplicated=_many(ImageTagCreateEntry),
    exceeded=_many(ImageTagCreateEntry),
)
@dataclass(slots=True)
class ImageTagCreateSummary(_Model):
    created: tuple[ImageTagCreateEntry, ...] = ()
    duplicated: tuple[ImageTagCreateEntry, ...] = ()
    exceeded: tuple[ImageTagCreateEntry, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire(exportable_to=_STRINGS)
@dataclass(slots=True)
class Iteration(_Model):
    id: str | None = None
    name: str | None = None
    status: str | None = None  # free-form in the spec ("Training", "Completed", ...)
    created: str | None = None
    last_modified: str | None = None
    trained_at: str | None = None
    project_id: str | None = None
    exportable: bool | None = None
    exportable_to: tuple[str, ...] | None = None
    domain_id: str | None = None
    classification_type: str | None = None
    training_type: str | None = None
    reserved_budget_in_hours: int | None = None
    training_time_in_minutes: int | None = None
    publish_name: str | None = None
    original_publish_resource_id: str | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class TagPerformance(_Model):
    id: str | None = None
    name: str | None = None
    precision: float | None = None
    precision_std_deviation: float | None = None
    recall: float | None = None
    recall_std_deviation: float | None = None
    average_precision: float | None = None
    extra: dict[str, Any] = _extra()


@_wire(per_tag_performance=_many(TagPerformance))
@dataclass(slots=True)
class IterationPerformance(_Model):
    per_tag_performance: tuple[TagPerformance, ...] = ()
    precision: float | None = None
    precision_std_deviation: float | None = None
    recall: float | None = None
    recall_std_deviation: float | None = None
    average_precision: float | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class BoundingBox(_Model):
    left: float
    top: float
    width: float
    height: float
    extra: dict[str, Any] = _extra()


@_wire(bounding_box=_one(BoundingBox))
@dataclass(slots=True)
class Prediction(_Model):
    probability: float | None = None
    tag_id: str | None = None
    tag_name: str | None = None
    bounding_box: BoundingBox | None = None
    tag_type: str | None = None  # training's QuickTest copy only
    extra: dict[str, Any] = _extra()


@_wire(predictions=_many(Prediction))
@dataclass(slots=True)
class ImagePrediction(_Model):
    id: str | None = None
    project: str | None = None
    iteration: str | None = None
    created: str | None = None
    predictions: tuple[Prediction, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire(renames={"estimated_import_time_in_ms": "estimatedImportTimeInMS"})
@dataclass(slots=True)
class ProjectExport(_Model):
    iteration_count: int | None = None
    image_count: int | None = None
    tag_count: int | None = None
    region_count: int | None = None
    estimated_import_time_in_ms: int | None = None
    token: str | None = None
    extra: dict[str, Any] = _extra()
