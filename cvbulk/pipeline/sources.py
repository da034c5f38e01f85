"""Where upload's images come from: a small protocol, and the local folder that implements it.

A source lists its images (lazily, as ``ScanEntry``-like items with ``relpath``, ``size``, ``mtime_ns``, or
``ScanProblem``s for what could not be read), checks one image (``prepare``, synchronous: it runs in a worker
thread under the CPU limiter) and hands out the body a request reads when it is written. The journal keys
images by ``relpath``; ``location`` names the source in the state file's fingerprint, so one state file
never serves two sources.

A new source (blob storage ...) implements :class:`ImageSource` and is passed as ``UploadOptions.source``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol

from ..client._body import FileBody, ImageBody
from .labels import RegionLabel
from .prepare import ImageLimits, PreparedImage, Rejected, prepare_image
from .scan import aiter_scan, count_candidates_within

__all__ = ["ImageSource", "LocalFolder"]


class ImageSource(Protocol):
    @property
    def location(self) -> str:
        """What the source is, for the state file's fingerprint (an absolute path, a container URL without
        any secret)."""
        ...

    def entries(self, *, include_hidden: bool = False) -> AsyncIterator[Any]:
        """Every image as an item with ``relpath`` (posix, the journal key), ``size`` and ``mtime_ns`` (any
        number that changes when the content does), or a ``ScanProblem``; deterministic order."""
        ...

    def prepare(self, entry: Any, limits: ImageLimits, regions: Iterable[RegionLabel]) -> PreparedImage | Rejected:
        """Check (and if need be fix) one image; blocking, called in a worker thread."""
        ...

    def body(self, entry: Any, size: int) -> ImageBody:
        """The image's own bytes (``size`` of them), read when its request is written, anew on a retry."""
        ...

    # Optional (looked up with getattr by cvbulk.pipeline.engine.count_first):
    # def count_within(self, seconds: float, *, include_hidden: bool = False) -> int | None
    #     How many items ``entries`` will yield, counted within ``seconds`` (blocking, run in a worker
    #     thread); None when it would take longer, or when the source cannot count cheaply.


class LocalFolder:
    """A folder on disk, walked by ``scan.aiter_scan``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root.resolve())

    def entries(self, *, include_hidden: bool = False) -> AsyncIterator[Any]:
        return aiter_scan(self.root, include_hidden=include_hidden)

    def prepare(self, entry: Any, limits: ImageLimits, regions: Iterable[RegionLabel]) -> PreparedImage | Rejected:
        return prepare_image(entry.path, limits=limits, regions=regions)

    def body(self, entry: Any, size: int) -> ImageBody:
        return FileBody(entry.path, size)

    def count_within(self, seconds: float, *, include_hidden: bool = False) -> int | None:
        """The number of values ``entries`` yields (images and scan problems), or None past ``seconds``."""
        return count_candidates_within(self.root, seconds, include_hidden=include_hidden)
