"""cvbulk.client: a typed async client for Azure Custom Vision (Training v3.3, Prediction v3.0).

It stands on its own (nothing of cvbulk's pipeline, CLI or emulator is imported)::

    async with TrainingClient(endpoint, key, pacer=Pacer.for_tier("S0")) as training:
        project = await training.create_project("birds")
        summary = await training.create_images_from_data(project.id, [("a.jpg", data)], tag_ids=[tag.id])

Requests are paced per API group (rate limit + adaptive concurrency), retried on 429 / 5xx / dropped
connections / timeouts with backoff (Retry-After honoured), and counted in ``client.stats``.
"""

from ._body import BodyChanged, BytesBody, FileBody, ImageBody, as_body, read_body
from ._errors import (
    AuthenticationError,
    BadRequestError,
    BodyReadError,
    ConnectionFailedError,
    CustomVisionError,
    EndpointUnreachableError,
    NotFoundError,
    RateLimitedError,
    RequestTimeoutError,
    RetryBudgetExhausted,
    ServerError,
    TrainingFailedError,
    TrainingTimeoutError,
    TransportError,
    error_for_status,
    redact,
)
from ._http import Timeouts
from ._models import (
    BoundingBox,
    ClassificationType,
    Domain,
    DomainType,
    Export,
    ExportPlatform,
    ExportStatus,
    Image,
    ImageCreateResult,
    ImageCreateStatus,
    ImageCreateSummary,
    ImageFileCreateEntry,
    ImageIdCreateEntry,
    ImageMetadataUpdateEntry,
    ImageMetadataUpdateStatus,
    ImageMetadataUpdateSummary,
    ImagePrediction,
    ImageRegion,
    ImageRegionCreateEntry,
    ImageRegionCreateResult,
    ImageRegionCreateSummary,
    ImageTag,
    ImageTagCreateEntry,
    ImageTagCreateSummary,
    ImageUrlCreateEntry,
    Iteration,
    IterationPerformance,
    IterationStatus,
    Prediction,
    Project,
    ProjectExport,
    ProjectSettings,
    ProjectStatus,
    Region,
    Tag,
    TagPerformance,
    TagType,
    TrainingType,
)
from ._multipart import ImageData
from ._prediction import PredictionClient
from ._ratelimit import AdaptiveConcurrency, Pacer, RateLimiter
from ._retry import RetryCause, RetryEvent, RetryPolicy, parse_retry_after, parse_retry_after_message
from ._stats import ClientStats
from ._text import is_uuid, parse_timestamp
from ._tiers import TIER_RATES, TIERS, ApiGroup, Tier
from ._training import MAX_PAGE, TrainingClient

__all__ = [
    "TrainingClient", "PredictionClient",
    "Timeouts", "RetryPolicy", "RetryEvent", "RetryCause", "RateLimiter", "AdaptiveConcurrency", "Pacer", "ApiGroup", "ClientStats",
    "TIERS", "Tier", "TIER_RATES", "MAX_PAGE", "parse_timestamp", "is_uuid", "parse_retry_after", "parse_retry_after_message",
    "CustomVisionError", "AuthenticationError", "NotFoundError", "BadRequestError", "RateLimitedError",
    "ServerError", "TransportError", "ConnectionFailedError", "EndpointUnreachableError", "RequestTimeoutError", "RetryBudgetExhausted",
    "BodyReadError",
    "error_for_status", "redact",
    "Domain", "Project", "ProjectSettings", "Tag", "Image", "ImageTag", "ImageRegion", "Region",
    "ImageCreateResult", "ImageCreateSummary", "ImageFileCreateEntry", "ImageUrlCreateEntry",
    "ImageRegionCreateEntry", "ImageRegionCreateResult", "ImageRegionCreateSummary", "ImageTagCreateEntry",
    "ImageTagCreateSummary", "Iteration", "IterationPerformance", "TagPerformance", "ImagePrediction",
    "Prediction", "BoundingBox", "ProjectExport", "ImageIdCreateEntry", "ImageMetadataUpdateEntry",
    "ImageMetadataUpdateSummary",
    "ImageCreateStatus", "IterationStatus", "ProjectStatus", "ClassificationType", "TagType", "DomainType",
    "TrainingType", "ImageMetadataUpdateStatus", "Export", "ExportPlatform", "ExportStatus",
    "TrainingFailedError", "TrainingTimeoutError",
    # image bodies streamed from their source (engine, issue 14)
    "ImageBody", "ImageData", "FileBody", "BytesBody", "BodyChanged", "as_body", "read_body",
]
