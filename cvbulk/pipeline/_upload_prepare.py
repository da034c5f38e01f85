"""The prepare stage of an upload: check (and if need be fix) each image off the event loop, then let its
bytes go: a pass-through image is read again from its source when its request is written, a fixed one waits
in a temporary file."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..client._body import FileBody, ImageBody
from ._upload_state import _Context, _Run, _Work
from .batch import BatchItem, TaggedRegion
from .engine import put, take_ready
from .journal import UPLOADED, JournalEntry
from .labels import Labels, RegionLabel
from .prepare import ImageLimits, PreparedImage, Rejected
from .scan import ScanEntry

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif"}


def _wire_name(relpath: str, fmt: str) -> str:
    """An ASCII file name for the service: the file's stem and the extension of what is sent."""
    stem = _SAFE.sub("_", os.path.splitext(relpath.rsplit("/", 1)[-1])[0]).strip("_")[:80] or "image"
    return stem + _EXT.get(fmt.upper(), "." + fmt.lower())


#: Files checked per worker-thread hop when several wait: a header check takes ~0.1 ms, a hop about as much.
_PREPARE_RUN = 8
#: Images checked together by a source whose checks wait on the network (a container): their first reads go
#: out at once, pipelined (what one request per image cost in wake-ups and task switches is shared).
_AWAITED_RUN = 64


async def _preparer(
    run: _Run,
    work_recv: ObjectReceiveStream[_Work],
    item_send: ObjectSendStream[BatchItem],
    record_send: ObjectSendStream[JournalEntry],
) -> None:
    opts = run.options
    async with work_recv, item_send, record_send:
        async for first in work_recv:
            aprepare_many = getattr(run.images, "aprepare_many", None)  # a container: reads await, CPU takes run.cpu
            if aprepare_many is not None:
                works = take_ready(first, work_recv, _AWAITED_RUN)
                results: list[PreparedImage | Rejected]
                try:
                    results = await aprepare_many(
                        [w.entry for w in works], opts.limits, [w.labels.regions for w in works], run.cpu
                    )
                except Exception:  # a codec's own bug is one file's outcome, not the run's: find whose, alone
                    results = [await _aprepare_alone(aprepare_many, w, opts.limits, run.cpu) for w in works]
            else:
                works = take_ready(first, work_recv, _PREPARE_RUN)
                results = await anyio.to_thread.run_sync(
                    partial(_prepare_run, run.images.prepare, works, opts.limits), limiter=run.cpu
                )
            pending = list(zip(works, results))
            del results  # each fixed image's bytes go as soon as it is spooled, not with the whole run
            while pending:
                work, result = pending.pop(0)
                entry = work.entry
                if isinstance(result, Rejected):
                    await put(  # a source's transient trouble is "error": a resume retries it
                        record_send,
                        JournalEntry(entry.relpath, entry.size, entry.mtime_ns, None, result.status, reason=result.reason),
                    )
                    continue
                item = await _batch_item(run, work, work.labels, await _hold(run, entry, result))
                del result  # the bytes go now: the item reads them again when its request is written
                await put(item_send, item)


async def _aprepare_alone(
    aprepare_many: Callable[..., Awaitable[list[PreparedImage | Rejected]]],
    work: _Work,
    limits: ImageLimits,
    cpu: anyio.CapacityLimiter,
) -> PreparedImage | Rejected:
    try:
        return (await aprepare_many([work.entry], limits, [work.labels.regions], cpu))[0]
    except Exception as exc:
        return _crashed(exc)


def _prepare_run(
    prepare: Callable[[ScanEntry, ImageLimits, Sequence[RegionLabel]], PreparedImage | Rejected],
    works: list[_Work],
    limits: ImageLimits,
) -> list[PreparedImage | Rejected]:
    """Check (and if need be fix) several files in one worker-thread hop."""
    out: list[PreparedImage | Rejected] = []
    for work in works:
        try:
            out.append(prepare(work.entry, limits, work.labels.regions))
        except Exception as exc:  # a codec's own bug is this file's outcome, not the run's
            out.append(_crashed(exc))
    return out


def _crashed(exc: Exception) -> Rejected:
    return Rejected("corrupt", f"could not be read as an image ({type(exc).__name__}: {exc})")


async def _hold(run: _Run, entry: ScanEntry, prepared: PreparedImage) -> tuple[PreparedImage, ImageBody, Path | None]:
    """Where the image's bytes wait for their request: its own file when they are the file's (read again
    when the request is written), else a temporary file. Either way no bytes stay in memory."""
    if getattr(prepared, "url", None):  # the service fetches it (a container's read URL): no body
        return prepared, None, None  # type: ignore[return-value]
    if prepared.passed_through:
        return prepared, run.images.body(entry, prepared.size), None
    assert run.spool is not None
    spooled = await anyio.to_thread.run_sync(_spool, run.spool, prepared.data)
    return prepared, FileBody(spooled, prepared.size), spooled


def _spool(folder: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".img")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


async def _batch_item(
    run: _Run, work: _Work, labels: Labels, held: tuple[PreparedImage, ImageBody, Path | None]
) -> BatchItem:
    prepared, body, spooled = held
    region_tags = {r.tag for r in prepared.regions}
    # The quickstart sends regions without tagIds: a region's tag is the image's tag.
    tag_ids = await run.tags.ids_for([t for t in labels.tags if t not in region_tags])
    regions: tuple[TaggedRegion, ...] = ()
    if region_tags:
        region_ids = dict(zip(sorted(region_tags), await run.tags.ids_for(sorted(region_tags))))
        regions = tuple(TaggedRegion(region_ids[r.tag], r.left, r.top, r.width, r.height) for r in prepared.regions)
    if prepared.fixes:
        run.fixes.update(prepared.fixes)
    run.bytes_prepared += prepared.size
    prior = work.prior
    replaces = None
    if prior is not None:
        # The image an earlier version of this file became (kept through an interrupted re-send).
        replaces = prior.image_id if prior.status == UPLOADED else (prior.extra or {}).get("replaces")
    return BatchItem(
        key=work.entry.relpath,
        name=_wire_name(work.entry.relpath, prepared.format),
        body=body,
        url=getattr(prepared, "url", None),
        tag_ids=tuple(sorted(set(tag_ids))),
        regions=regions,
        metadata=labels.metadata,
        context=_Context(
            size=work.entry.size,
            mtime_ns=work.entry.mtime_ns,
            sha256=prepared.sha256,
            fixes=prepared.fixes,
            prior_status=prior.status if prior is not None else None,
            attempts=prior.attempts if prior is not None else 0,
            spooled=spooled,
            note=getattr(work.entry, "note", None),
            replaces=replaces,
            via=getattr(prepared, "via", None),
        ),
    )
