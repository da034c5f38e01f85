"""Dataclasses named after the schemas of Training v3.3 / Prediction v3.0.

``from_json`` maps camelCase keys to snake_case attributes through one precomputed table per class (this
runs on the hot path: a 64-image create summary per batch), keeps unknown keys in ``extra``, and leaves
datetimes as the service's ISO strings (``parse_timestamp`` reads them). ``to_json`` is the inverse. Lists
become tuples.

Fields the service always returns (checked against the spec and the recorded sessions of the real service)
are not Optional: ids and names are required, and the others that a caller rarely builds by hand
(timestamps, counts, statuses) have a default (an empty timestamp is left out by ``to_json``). Fields the service
may leave out or null stay ``X | None``. Statuses and kinds are ``Literal`` types; an unknown value from a
newer service passes through as the string it is.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, TypeVar, cast

__all__ = [
    "ImageCreateStatus", "IterationStatus", "ProjectStatus", "ClassificationType", "TagType", "DomainType",
    "TrainingType", "ImageMetadataUpdateStatus", "ExportStatus", "ExportPlatform", "Export", "ImageMetadataUpdateEntry", "ImageMetadataUpdateSummary",
    "Domain", "Project", "ProjectSettings", "Tag", "Image", "ImageTag", "ImageRegion", "Region",
    "ImageCreateResult", "ImageCreateSummary", "ImageFileCreateEntry", "ImageUrlCreateEntry",
    "ImageRegionCreateEntry", "ImageRegionCreateResult", "ImageRegionCreateSummary", "ImageTagCreateEntry",
    "ImageTagCreateSummary", "Iteration", "IterationPerformance", "TagPerformance", "ImagePrediction",
    "Prediction", "BoundingBox", "ProjectExport", "ImageIdCreateEntry",
]

M = TypeVar("M", bound="_Model")

#: ImageCreateResult.status: OK and OKDuplicate mean the image is in the project.
ImageCreateStatus = Literal[
    "OK", "OKDuplicate", "ErrorSource", "ErrorImageFormat", "ErrorImageSize", "ErrorStorage", "ErrorLimitExceed",
    "ErrorTagLimitExceed", "ErrorRegionLimitExceed", "ErrorUnknown", "ErrorNegativeAndRegularTagOnSameImage",
]
#: Iteration.status (free text in the spec; these are the values the service writes).
IterationStatus = Literal["Training", "Completed", "Failed"]
#: Project.status.
ProjectStatus = Literal["Succeeded", "Importing", "Failed"]
#: ProjectSettings.classification_type (None for object detection).
ClassificationType = Literal["Multiclass", "Multilabel"]
#: Tag.type.
TagType = Literal["Regular", "Negative", "GeneralProduct"]
#: Domain.type.
DomainType = Literal["Classification", "ObjectDetection"]
#: Iteration.training_type.
TrainingType = Literal["Regular", "Advanced"]
#: Export.status.
ExportStatus = Literal["Exporting", "Failed", "Done"]
#: Export.platform (ExportIteration's platform).
ExportPlatform = Literal["CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK"]
#: ImageMetadataUpdateEntry.status.
ImageMetadataUpdateStatus = Literal["OK", "ErrorImageNotFound", "ErrorLimitExceed", "ErrorUnknown"]


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Model:
    """Shared from_json / to_json over the wire table that ``_wire`` attaches to each class."""

    __slots__ = ()
    _wire_in: dict[str, tuple[str, Callable[[Any], Any] | None]]
    _wire_out: tuple[tuple[str, str, Callable[[Any], Any] | None], ...]

    _omit_default: tuple[tuple[str, Any], ...]

    @classmethod
    def from_json(cls: type[M], data: Mapping[str, Any]) -> M:
        """The model of one JSON object of the service (unknown keys kept in ``extra``)."""
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
        try:
            return cls(**kwargs)
        except TypeError:
            missing = [f.name for f in fields(cls) if _required(f) and f.name not in kwargs]  # type: ignore[arg-type]
            if not missing:
                raise
            raise ValueError(f"the service's {cls.__name__} has no {', '.join(map(_camel, missing))}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the service (camelCase keys; None and unset timestamps and URIs left out)."""
        out: dict[str, Any] = {}
        omit = self._omit_default
        for key, attr, dump in self._wire_out:
            value = getattr(self, attr)
            if value is None:
                continue
            if omit and any(attr == name and value == default for name, default in omit):
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
        for f in fields(cast(Any, cls)):
            if f.name == "extra":
                continue
            key = (renames or {}).get(f.name) or _camel(f.name)
            parse, dump = codecs.get(f.name, (None, None))
            wire_in[key] = (f.name, parse)
            wire_out.append((key, f.name, dump))
        cls._wire_in = wire_in
        cls._wire_out = tuple(wire_out)
        cls._omit_default = tuple(
            (f.name, f.default) for f in fields(cast(Any, cls)) if f.metadata.get("service") and f.default == ""
        )
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


def _service(default: Any) -> Any:
    """A field the service always fills; built by hand it defaults to ``default`` (an empty string is left
    out of to_json: the service never writes one where it puts a time or a URI)."""
    return field(default=default, metadata={"service": True})


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


@_wire()
@dataclass(slots=True)
class Domain(_Model):
    """A domain: the base model a project trains from (GetDomains)."""

    id: str
    name: str
    type: DomainType
    exportable: bool = _service(False)
    enabled: bool = _service(True)
    extra: dict[str, Any] = _extra()


@_wire(target_export_platforms=_STRINGS)
@dataclass(slots=True)
class ProjectSettings(_Model):
    """A project's settings; also what CreateProject / UpdateProject take, so every field may be left out."""

    domain_id: str | None = None
    classification_type: ClassificationType | None = None
    target_export_platforms: tuple[str, ...] | None = None
    use_negative_set: bool | None = None
    detection_parameters: str | None = None
    image_processing_settings: dict[str, Any] | None = None
    extra: dict[str, Any] = _extra()


@_wire(settings=_one(ProjectSettings))
@dataclass(slots=True)
class Project(_Model):
    """A Custom Vision project."""

    id: str
    name: str
    description: str | None = None
    settings: ProjectSettings | None = None
    created: str = _service("")
    last_modified: str = _service("")
    thumbnail_uri: str | None = None
    dr_mode_enabled: bool = _service(False)
    status: ProjectStatus | None = None  # absent from some recorded answers
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class Tag(_Model):
    """A tag of a project; ``image_count`` is the number of images that carry it."""

    id: str
    name: str
    description: str | None = None
    type: TagType = _service("Regular")
    image_count: int = _service(0)
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageTag(_Model):
    """A tag on an image (``tag_name`` may be null when the tag was deleted)."""

    tag_id: str
    tag_name: str | None = None
    created: str = _service("")
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageRegion(_Model):
    """A region on a stored image: a normalised (0..1) box and its tag."""

    region_id: str
    tag_id: str
    left: float
    top: float
    width: float
    height: float
    tag_name: str | None = None
    created: str = _service("")
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
    """A stored image: its size, where to download it, its tags, regions and metadata."""

    id: str
    created: str
    width: int | None = None
    height: int | None = None
    resized_image_uri: str = _service("")
    thumbnail_uri: str = _service("")
    original_image_uri: str = _service("")
    tags: tuple[ImageTag, ...] | None = None
    regions: tuple[ImageRegion, ...] | None = None
    metadata: dict[str, str] | None = None
    extra: dict[str, Any] = _extra()


@_wire(image=_one(Image))
@dataclass(slots=True)
class ImageCreateResult(_Model):
    """The outcome of one image of a create batch; ``image`` is there for OK and OKDuplicate."""

    source_url: str
    status: ImageCreateStatus
    image: Image | None = None
    extra: dict[str, Any] = _extra()

    @property
    def ok(self) -> bool:
        """True for OK and OKDuplicate (the image is in the project)."""
        return self.status in ("OK", "OKDuplicate")

    @property
    def source_name(self) -> str:
        """``source_url`` without the literal quotes the service puts around uploaded file names."""
        src = self.source_url
        if src and len(src) >= 2 and src[0] == '"' and src[-1] == '"':
            return src[1:-1]
        return src


@_wire(images=_many(ImageCreateResult))
@dataclass(slots=True)
class ImageCreateSummary(_Model):
    """The answer of a create batch (200, or 207 when some images failed: see each result's status)."""

    is_batch_successful: bool = _service(False)
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
    """One image of CreateImagesFromUrls: the service downloads ``url``."""

    url: str
    tag_ids: tuple[str, ...] | list[str] = ()
    regions: tuple[Region, ...] | list[Region] = ()
    extra: dict[str, Any] = _extra()


@_wire(tag_ids=_STRINGS, regions=_many(Region))
@dataclass(slots=True)
class ImageIdCreateEntry(_Model):
    """One image of CreateImagesFromPredictions: ``id`` is a stored prediction's image id."""

    id: str
    tag_ids: tuple[str, ...] | list[str] = ()
    regions: tuple[Region, ...] | list[Region] = ()
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageRegionCreateEntry(_Model):
    """One region to add to a stored image (CreateImageRegions)."""

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
    """A region that CreateImageRegions created."""

    image_id: str
    region_id: str
    tag_id: str
    left: float
    top: float
    width: float
    height: float
    tag_name: str | None = None
    created: str = _service("")
    extra: dict[str, Any] = _extra()


@_wire(
    created=_many(ImageRegionCreateResult),
    duplicated=_many(ImageRegionCreateEntry),
    exceeded=_many(ImageRegionCreateEntry),
)
@dataclass(slots=True)
class ImageRegionCreateSummary(_Model):
    """The answer of CreateImageRegions: created, duplicated (already there) and exceeded (over a limit)."""

    created: tuple[ImageRegionCreateResult, ...] = ()
    duplicated: tuple[ImageRegionCreateEntry, ...] = ()
    exceeded: tuple[ImageRegionCreateEntry, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageTagCreateEntry(_Model):
    """One (image, tag) pair of CreateImageTags."""

    image_id: str
    tag_id: str
    extra: dict[str, Any] = _extra()


@_wire(
    created=_many(ImageTagCreateEntry),
    duplicated=_many(ImageTagCreateEntry),
    exceeded=_many(ImageTagCreateEntry),
)
@dataclass(slots=True)
class ImageTagCreateSummary(_Model):
    """The answer of CreateImageTags: created, duplicated (already there) and exceeded (over a limit)."""

    created: tuple[ImageTagCreateEntry, ...] = ()
    duplicated: tuple[ImageTagCreateEntry, ...] = ()
    exceeded: tuple[ImageTagCreateEntry, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class ImageMetadataUpdateEntry(_Model):
    """The outcome of UpdateImageMetadata for one image."""

    image_id: str
    status: ImageMetadataUpdateStatus
    metadata: dict[str, str] | None = None
    extra: dict[str, Any] = _extra()

    @property
    def ok(self) -> bool:
        """True when the image's metadata was updated."""
        return self.status == "OK"


@_wire(images=_many(ImageMetadataUpdateEntry))
@dataclass(slots=True)
class ImageMetadataUpdateSummary(_Model):
    """The answer of UpdateImageMetadata (200, or 207 when some images failed: see each entry's status)."""

    is_batch_successful: bool = _service(False)
    images: tuple[ImageMetadataUpdateEntry, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire(exportable_to=_STRINGS)
@dataclass(slots=True)
class Iteration(_Model):
    """A trained (or training) model of a project; ``status`` goes Training -> Completed or Failed."""

    id: str
    name: str
    status: IterationStatus
    created: str = _service("")
    last_modified: str = _service("")
    trained_at: str | None = None
    project_id: str = _service("")
    exportable: bool = _service(False)
    exportable_to: tuple[str, ...] | None = None
    domain_id: str | None = None
    classification_type: ClassificationType | None = None
    training_type: TrainingType = _service("Regular")
    reserved_budget_in_hours: int = _service(0)
    training_time_in_minutes: int | None = None
    publish_name: str | None = None
    original_publish_resource_id: str | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class TagPerformance(_Model):
    """Precision and recall of one tag in an iteration."""

    id: str
    name: str
    precision: float = _service(0.0)
    precision_std_deviation: float = _service(0.0)
    recall: float = _service(0.0)
    recall_std_deviation: float = _service(0.0)
    average_precision: float | None = None
    extra: dict[str, Any] = _extra()


@_wire(per_tag_performance=_many(TagPerformance))
@dataclass(slots=True)
class IterationPerformance(_Model):
    """Precision and recall of an iteration, overall and per tag."""

    per_tag_performance: tuple[TagPerformance, ...] = ()
    precision: float = _service(0.0)
    precision_std_deviation: float = _service(0.0)
    recall: float = _service(0.0)
    recall_std_deviation: float = _service(0.0)
    average_precision: float | None = None
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class BoundingBox(_Model):
    """A normalised (0..1) box of an object detection prediction."""

    left: float
    top: float
    width: float
    height: float
    extra: dict[str, Any] = _extra()


@_wire(bounding_box=_one(BoundingBox))
@dataclass(slots=True)
class Prediction(_Model):
    """One tag's probability (and box, for object detection)."""

    probability: float
    tag_id: str
    tag_name: str
    bounding_box: BoundingBox | None = None
    tag_type: TagType | None = None  # training's QuickTest copy only
    extra: dict[str, Any] = _extra()


_PREDICTION_KEYS = frozenset({"probability", "tagId", "tagName", "boundingBox", "tagType"})


def _prediction(data: Mapping[str, Any]) -> Prediction:
    """``Prediction.from_json`` without the generic table walk for the usual answer (every prediction of every
    image passes here); anything unusual (an unknown key, a missing one) takes the generic path."""
    if data.keys() <= _PREDICTION_KEYS:
        try:
            box = data.get("boundingBox")
            return Prediction(
                data["probability"], data["tagId"], data["tagName"],
                BoundingBox.from_json(box) if box is not None else None, data.get("tagType"),
            )
        except KeyError:
            pass
    return Prediction.from_json(data)


@_wire(predictions=(lambda values: tuple([_prediction(v) for v in values]), _many(Prediction)[1]))
@dataclass(slots=True)
class ImagePrediction(_Model):
    """The answer of a classify, detect or quick test call."""

    id: str
    project: str
    iteration: str
    created: str = _service("")
    predictions: tuple[Prediction, ...] = ()
    extra: dict[str, Any] = _extra()


@_wire(renames={"estimated_import_time_in_ms": "estimatedImportTimeInMS"})
@dataclass(slots=True)
class ProjectExport(_Model):
    """What ExportProject gives: the counts and the token ImportProject takes."""

    iteration_count: int = _service(0)
    image_count: int = _service(0)
    tag_count: int = _service(0)
    region_count: int = _service(0)
    estimated_import_time_in_ms: int = _service(0)
    token: str = _service("")
    extra: dict[str, Any] = _extra()


@_wire()
@dataclass(slots=True)
class Export(_Model):
    """An export of a trained iteration for a platform; ``download_uri`` is set once ``status`` is Done."""

    platform: ExportPlatform
    status: ExportStatus
    download_uri: str | None = None
    flavor: str | None = None
    newer_version_available: bool = _service(False)
    extra: dict[str, Any] = _extra()
