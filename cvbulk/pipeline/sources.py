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
from .scan import aiter_scan

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
        # header only: an image that passes through is read again when it is sent, never twice here
        return prepare_image(entry.path, limits=limits, regions=regions, header_only=True)

    def body(self, entry: Any, size: int) -> ImageBody:
        return FileBody(entry.path, size)
