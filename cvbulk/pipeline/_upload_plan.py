"""The plan stage of an upload: each candidate the scan found (and each row of a label file that names no
file) gets its decision before any image is read: skipped (with why), rejected (invalid labels), done
already (the journal says so), or work for prepare."""

from __future__ import annotations

import os
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectSendStream

from ._upload_state import _Run, _Work
from .engine import put, scan_finished
from .errors import ConfigError
from .journal import FAILURE_STATUSES, REJECTED, SKIPPED, JournalEntry, needs_work
from .labels import NO_LABEL, UNTAGGED, LabelProblem, Labels, decide
from .scan import ScanEntry, ScanProblem, excluded_by

MISSING = "listed in the label file, but there is no such file under ROOT"
NOT_SCANNED = "listed in the label file, but the scan did not take it (see the line of its folder)"
# Reasons decided by the plan (not by the image): a rerun redoes the file when the plan says otherwise now
# (labels fixed, --untagged, a pattern dropped), even though the file itself did not change.
_PLAN_REASONS = ("excluded by --exclude", "bad labels:", NO_LABEL, UNTAGGED)
_PLAN_CHUNK = 64  # files looked up in the journal per worker-thread hop


async def _scan_and_plan(
    run: _Run, work_send: ObjectSendStream[_Work], record_send: ObjectSendStream[JournalEntry]
) -> None:
    opts = run.options
    async with work_send, record_send:
        chunk: list[ScanEntry | ScanProblem] = []
        async for found in run.images.entries(include_hidden=opts.include_hidden):
            chunk.append(found)
            if len(chunk) >= _PLAN_CHUNK:
                await _plan(run, chunk, work_send, record_send)
                chunk = []
        if chunk:
            await _plan(run, chunk, work_send, record_send)
        await _plan_unmatched(run, record_send)
        scan_finished(run.progress)  # the items reported so far are the total


def _lookup(run: _Run, chunk: list[ScanEntry | ScanProblem]) -> list[tuple[Any, Labels | LabelProblem | None, Any]]:
    """One worker-thread hop per chunk: the journal rows and the labels of its files."""
    journal = run.journal
    known = journal.get_many([f.relpath for f in chunk]) if journal is not None else {}
    source_labels = run.source.labels_for
    matched_key = getattr(run.source, "matched_key", None)
    out = []
    for f in chunk:
        if matched_key is not None:
            key = matched_key(f.relpath)
            if key is not None:
                run.matched.add(key)  # this row of the label file names a file the scan found
        labels = source_labels(f.relpath) if not isinstance(f, ScanProblem) else None
        out.append((f, labels, known.get(f.relpath)))
    return out


async def _plan_unmatched(run: _Run, record_send: ObjectSendStream[JournalEntry]) -> None:
    """The label file's rows that name no file the scan found: each is an outcome too (skipped, why)."""
    listed = getattr(run.source, "listed", None)
    if listed is None:
        return
    root = run.options.root

    def unmatched() -> list[tuple[str, str, JournalEntry | None]]:
        rows = [key for key in listed() if key not in run.matched]
        known = run.journal.get_many(rows) if run.journal is not None else {}
        out = []
        for key in rows:
            there = run.options.source is None and os.path.lexists(root / key)
            out.append((key, NOT_SCANNED if there else MISSING, known.get(key)))
        return out

    missing = await anyio.to_thread.run_sync(unmatched)
    run.listed += len(missing)
    if run.progress is not None and missing:
        run.progress.add_total(len(missing))
    done = 0
    for key, reason, prior in missing:
        if prior is not None and prior.status == SKIPPED and prior.reason == reason:
            done += 1
        elif prior is None or prior.size is None:  # never let a row of the label file hide a file's outcome
            await put(record_send, JournalEntry(key, None, None, None, SKIPPED, reason=reason))
        else:
            done += 1
    if done:
        run.advance(["unchanged"] * done)


def _decision(run: _Run, found: ScanEntry, labels: Labels | LabelProblem | None) -> tuple[str, str] | Labels:
    """What the plan decides for a scanned file before reading it: (status, reason) or the labels to send."""
    pattern = excluded_by(found.relpath, run.options.exclude)
    if pattern is not None:
        return SKIPPED, f"excluded by --exclude {pattern}"
    decided = decide(labels, untagged=run.options.untagged)
    if isinstance(decided, LabelProblem):
        if decided.kind in ("no-label", "untagged"):
            return SKIPPED, decided.reason
        return REJECTED, f"bad labels: {decided.reason}"  # never sent: untagged would lose the labels meant
    return decided


async def _plan(
    run: _Run,
    chunk: list[ScanEntry | ScanProblem],
    work_send: ObjectSendStream[_Work],
    record_send: ObjectSendStream[JournalEntry],
) -> None:
    planned = await anyio.to_thread.run_sync(_lookup, run, chunk)
    run.listed += len(chunk)
    if run.progress is not None:
        run.progress.add_total(len(chunk))
    done: list[str] = []
    for found, labels, prior in planned:
        if isinstance(found, ScanProblem):
            if found.relpath == ".":  # ROOT itself cannot be read: nothing to upload at all
                raise ConfigError(f"cannot read {run.options.root}: {found.reason}")
            # Hidden, special and unsupported files, symlink loops, dangling links, unreadable folders:
            # reported and skipped (no image lost that could have been read); the scan's reason says which.
            if prior is None or prior.status != SKIPPED or prior.reason != found.reason:
                await put(record_send, JournalEntry(found.relpath, None, None, None, SKIPPED, reason=found.reason))
            else:
                done.append("unchanged")
            continue
        decision = _decision(run, found, labels)
        if not isinstance(decision, Labels):
            status, reason = decision
            same = prior is not None and prior.status == status and prior.reason == reason
            if same and not needs_work(prior, found.size, found.mtime_ns):
                done.append("still-failed" if status in FAILURE_STATUSES else "unchanged")
            else:
                note = getattr(found, "note", None)
                await put(
                    record_send,
                    JournalEntry(found.relpath, found.size, found.mtime_ns, None, status, reason=reason,
                                 extra={"note": note} if note else None),
                )
            continue
        # A file skipped or rejected by the plan before (labels, --untagged, --exclude) has work now.
        planned_before = prior is not None and (prior.reason or "").startswith(_PLAN_REASONS)
        if prior is not None and not needs_work(prior, found.size, found.mtime_ns) and not planned_before:
            done.append("still-failed" if prior.status in FAILURE_STATUSES else "unchanged")
            continue
        await put(work_send, _Work(found, decision, prior))
    if done:
        run.advance(done)
