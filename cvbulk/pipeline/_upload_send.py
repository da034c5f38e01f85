"""The send and record stages of an upload: senders take batches within a byte budget and send each between
two journal writes (intent, outcomes); outcomes that need no request are written in chunks; a dry run only
counts what would be sent."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream

from ..client._errors import AuthenticationError, CustomVisionError, NotFoundError
from ._upload_state import _entry, _list_reject, _Run
from .batch import Batch
from .engine import send_recorded, take_ready
from .journal import DUPLICATE, FAILURE_STATUSES, SENDING, UPLOADED, Journal, JournalEntry
from .send import Reclassified, SendOutcome


class _ByteBudget:
    """Bytes of batches held by the senders. Senders mostly wait (for a rate token, for the
    service): without a bound, N senders with big images would hold N x the batch budget."""

    def __init__(self, limit: int, first_guess: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = anyio.Event()
        self._recent: list[int] = [first_guess]

    @property
    def typical(self) -> int:
        """The largest of the last few batches: what a sender reserves before it takes one."""
        return max(self._recent)

    def observe(self, nbytes: int) -> None:
        self._recent = (self._recent + [max(nbytes, 1)])[-8:]

    async def reserve(self, n: int) -> None:
        # One holder always proceeds, so an oversized batch cannot wait for ever.
        while self.used and self.used + n > self.limit:
            await self._changed.wait()
        self.used += n

    def release(self, n: int) -> None:
        self.used -= n
        self._changed.set()
        self._changed = anyio.Event()


async def _sender(run: _Run, batch_recv: ObjectReceiveStream[Batch], budget: _ByteBudget) -> None:
    assert run.sender is not None and run.journal is not None
    journal = run.journal
    async with batch_recv:
        while True:
            # Room for a typical batch first, so that waiting happens before a batch is held.
            # Reserving the full byte budget per request instead would cap the requests in flight
            # at limit / batch_bytes (8), far below what a slow service needs to hold the rate.
            want = budget.typical
            await budget.reserve(want)
            try:
                batch = await batch_recv.receive()
            except anyio.EndOfStream:
                budget.release(want)
                return
            held = batch.nbytes
            budget.observe(held)
            if held > want:
                await budget.reserve(held - want)
            else:
                budget.release(want - held)
            try:
                await _send_one(run, journal, batch)
            finally:
                budget.release(held)


async def _send_one(run: _Run, journal: Journal, batch: Batch) -> None:
    assert run.sender is not None
    prior = {it.key: it.context.prior_status for it in batch.items}
    intent = [_entry(it, SENDING) for it in batch.items]
    try:
        outcomes = await send_recorded(
            run, journal, intent, partial(run.sender.send, batch, prior=prior), _outcome_entry,
            on_fatal=lambda recorded: run.advance([o.status for o in recorded]),  # a stopped run's report counts them
        )
    finally:
        spooled = [it.context.spooled for it in batch.items if it.context.spooled is not None]
        if spooled:
            await anyio.to_thread.run_sync(_unlink, spooled)
    moved = run.sender.take_reclassified()
    if moved:
        await run.journal_call(_demote, journal, moved)
        run.tally.subtract({UPLOADED: len(moved)})
        run.tally.update({DUPLICATE: len(moved)})
    if run.options.replace_changed:
        await _replace_changed(run, journal, outcomes)
    sent = sum(o.item.nbytes for o in outcomes if o.status in (UPLOADED, DUPLICATE))
    run.bytes_sent += sent
    run.advance([o.status for o in outcomes], nbytes=sent)


def _demote(journal: Journal, moved: list[Reclassified]) -> None:
    """Uploaded outcomes a later answer showed to be another file's image: recorded as duplicates."""
    rows = journal.get_many([m.key for m in moved])
    fixed = [
        replace(rows[m.key], status=DUPLICATE, reason=m.reason)
        for m in moved
        if m.key in rows and rows[m.key].status == UPLOADED and rows[m.key].image_id == m.image_id
    ]
    journal.record(fixed)


async def _replace_changed(run: _Run, journal: Journal, outcomes: list[SendOutcome]) -> None:
    """--replace-changed: a changed file's new image is in; its old image goes (then the note says so)."""
    done = [
        o
        for o in outcomes
        if o.status == UPLOADED and o.image_id and o.item.context.replaces not in (None, o.image_id)
    ]
    if not done:
        return
    old = sorted({o.item.context.replaces for o in done})
    try:
        await run.client.delete_images(run.sender.project_id if run.sender else "", old)
    except (AuthenticationError, NotFoundError):
        raise
    except CustomVisionError:
        return  # the old images stay; the notes already recorded say so
    await run.journal_call(journal.record, [_entry(o.item, o.status, o.image_id, o.reason, deleted=True) for o in done])


def _unlink(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _outcome_entry(o: SendOutcome) -> JournalEntry:
    return _entry(o.item, o.status, o.image_id, o.reason)


async def _dry_run_sink(run: _Run, batch_recv: ObjectReceiveStream[Batch]) -> None:
    names = {tid: name for name, tid in run.tags._ids.items()}
    async with batch_recv:
        async for batch in batch_recv:
            for item in batch.items:
                tags = set(item.tag_ids) | {r.tag_id for r in item.regions}
                run.per_tag.update(names.get(t, t) for t in tags) if tags else run.per_tag.update(["(untagged)"])
                if item.context.spooled is not None:
                    await anyio.to_thread.run_sync(_unlink, [item.context.spooled])
            run.bytes_sent += batch.nbytes
            run.advance(["would-send"] * len(batch), nbytes=batch.nbytes)


async def _recorder(run: _Run, record_recv: ObjectReceiveStream[JournalEntry]) -> None:
    """Outcomes that need no request, written in chunks (one transaction each)."""
    async with record_recv:
        while True:
            try:
                first = await record_recv.receive()
            except anyio.EndOfStream:
                return
            chunk = take_ready(first, record_recv, 256)
            if run.journal is not None and not run.options.dry_run:
                await run.journal_call(run.journal.record, chunk)
            else:
                for e in chunk:
                    if e.status in FAILURE_STATUSES:
                        _list_reject(run, e.key, e.reason or e.status)
            run.advance([e.status for e in chunk])
