"""What the stages of an upload share: the run (counters, the journal, the label source, the image source),
the work item between plan and prepare, the context an image carries through batch and send, and the journal
row of an outcome."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .batch import BatchItem
from .engine import JournalCalls, ProgressSink
from .journal import DUPLICATE, FAILURE_STATUSES, REJECTED, SENDING, UPLOADED, Journal, JournalEntry
from .labels import Labels, LabelSource
from .project import TagMap
from .scan import ScanEntry
from .send import ImageSender
from .sources import ImageSource

if TYPE_CHECKING:
    from ..client import TrainingClient
    from .upload import UploadOptions

_MAX_LISTED = 1000  # rejects listed by a dry run (the counts stay exact)


@dataclass(frozen=True, slots=True)
class _Context:
    """What the journal row of an image needs, carried through batch and send."""

    size: int
    mtime_ns: int
    sha256: str | None  # None: passed through untouched, never read whole (header-only prepare)
    fixes: tuple[str, ...]
    prior_status: str | None
    attempts: int
    spooled: Path | None = None  # a fixed image's temporary file, removed once its outcome is recorded
    note: str | None = None  # the scan's remark on the file (a name ending in a space)
    replaces: str | None = None  # the image an earlier version of this file became (the file changed since)
    via: str | None = None  # from a container: "url" or "bytes" (journal extra, report)


@dataclass(frozen=True, slots=True)
class _Work:
    entry: ScanEntry
    labels: Labels
    prior: JournalEntry | None


@dataclass
class _Run(JournalCalls):
    """The state of one run shared by its tasks (counters only: per-file state lives in the journal)."""

    options: UploadOptions
    source: LabelSource  # the labels
    images: ImageSource  # the images (a folder, a container, ...)
    journal: Journal | None
    tags: TagMap
    progress: ProgressSink | None
    client: TrainingClient
    sender: ImageSender | None
    spool: Path | None = None  # where fixed images wait for their request
    tally: Counter = field(default_factory=Counter)
    fixes: Counter = field(default_factory=Counter)
    per_tag: Counter = field(default_factory=Counter)
    batches: Counter = field(default_factory=Counter)
    listed_rejects: list[dict[str, str]] = field(default_factory=list)
    matched: set[str] = field(default_factory=set)  # rows of the label file some scanned file matched
    bytes_prepared: int = 0
    bytes_sent: int = 0
    listed: int = 0  # candidates the plan took from the scan (and label rows naming no file): each ends in the tally
    journal_lock: anyio.Lock = field(default_factory=anyio.Lock)
    cpu: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(os.cpu_count() or 1))

    def advance(self, statuses: Sequence[str], nbytes: int = 0) -> None:
        self.tally.update(statuses)
        if self.progress is None:
            return
        ok = sum(1 for s in statuses if s in (UPLOADED, DUPLICATE, "would-send"))
        failed = sum(1 for s in statuses if s in FAILURE_STATUSES)
        skipped = len(statuses) - ok - failed
        self.progress.advanced(ok=ok, failed=failed, skipped=skipped, nbytes=nbytes)


def _entry(
    item: BatchItem, status: str, image_id: str | None = None, reason: str | None = None, *, deleted: bool = False
) -> JournalEntry:
    ctx: _Context = item.context
    extra: dict[str, Any] = {}
    notes = [ctx.note] if ctx.note else []
    if ctx.replaces and status == SENDING:
        extra["replaces"] = ctx.replaces
    elif ctx.replaces and image_id and image_id != ctx.replaces and status in (UPLOADED, DUPLICATE):
        if deleted:
            notes.append(f"changed since uploaded: sent again; the old image (id {ctx.replaces}) was deleted")
        else:
            new = "sent again as a new image" if status == UPLOADED else "its new content is already in the project"
            notes.append(f"changed since uploaded: {new}; the old image stays in the project (id {ctx.replaces})")
            extra["replaces"] = ctx.replaces
    if notes:
        extra["note"] = "; ".join(notes)
    if ctx.via:
        extra["via"] = ctx.via
    return JournalEntry(
        key=item.key,
        size=ctx.size,
        mtime_ns=ctx.mtime_ns,
        sha256=ctx.sha256,
        status=status,
        image_id=image_id,
        reason=reason,
        fixes=ctx.fixes,
        attempts=ctx.attempts,
        extra=extra or None,
    )


def _list_reject(run: _Run, path: str, reason: str) -> None:
    if len(run.listed_rejects) < _MAX_LISTED:
        run.listed_rejects.append({"path": path, "status": REJECTED, "reason": reason})
