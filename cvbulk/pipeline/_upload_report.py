"""The report of an upload: counts, failures, and every candidate that did not become an image of its own
(skipped with why), every image cvbulk altered (with the fixes), every note (a changed file, a name that
ends in a space)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import build_report

if TYPE_CHECKING:
    from ..client import Project

__all__ = ["upload_report"]


def _concurrency(client: Any) -> int | None:
    pacer = getattr(client, "pacer", None)
    if pacer is None:
        return None
    try:
        from ..client import ApiGroup

        return int(pacer.concurrency(ApiGroup.TRAINING))
    except Exception:  # a display nicety: never let it stop an upload
        return None


def upload_report(
    run: Any,
    project: Project | None,
    created: bool,
    tags_created: list[str],
    state: Path,
    started: float,
    finished: float,
    ok: bool,
    failures: list[Any],
    listed: dict[str, Any],
    *,
    stopped: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report of one upload run (``run``: upload's ``_Run``; ``listed``: what the state file
    lists besides failures: ``skipped``, ``fixed``, ``notes``, ``state_counts``; ``stopped``: why the run ended
    early, ``engine.Stop.report``)."""
    opts = run.options
    counts = {s: n for s, n in run.tally.items() if s not in ("unchanged", "still-failed", "would-send") and n}
    journal = run.journal
    stats = getattr(run.client, "stats", None)
    snapshot = stats.snapshot() if stats is not None and not opts.dry_run else None
    extra: dict[str, Any] = {
        "root": str(opts.root),
        "project": {
            "id": project.id if project is not None else None,
            "name": project.name if project is not None else opts.project,
            "created": created,
            "would_create": project is None,
        },
        "labels": opts.labels,
        "dry_run": opts.dry_run,
        "state_file": str(state) if journal is not None else None,
        "unchanged": run.tally.get("unchanged", 0) + run.tally.get("still-failed", 0),
        "still_failed": run.tally.get("still-failed", 0),
        "tags_created": tags_created,
        # Lists, not dicts keyed by name: the report drops any field whose name holds "key".
        "fixes": [{"fix": f, "images": n} for f, n in run.fixes.most_common()],
        "batches": dict(run.batches),
        "splits": run.sender.splits if run.sender is not None else 0,
        "bytes_prepared": run.bytes_prepared,
        "concurrency": _concurrency(run.client),
        "exit_code": 3 if stopped else 0 if ok else 1,
    }
    source_report = getattr(run.images, "report", None)
    if source_report is not None:  # a container: which way the images went, what was read
        extra["source"] = source_report()
        extra["root"] = extra["source"]["location"]
    if listed:
        # The whole state (every run so far): what the project holds from this folder is `uploaded`.
        extra["state_counts"] = {str(s): n for s, n in sorted(listed.get("state_counts", {}).items())}
        extra["skipped"] = listed.get("skipped", [])
        extra["fixed"] = listed.get("fixed", [])
        extra["notes"] = listed.get("notes", [])
    if opts.dry_run:
        extra["would_send"] = {
            "images": run.tally.get("would-send", 0),
            "bytes": run.bytes_sent,
            "per_tag": [{"tag": t, "images": n} for t, n in sorted(run.per_tag.items())],
            "tags_to_create": tags_created,
        }
    return build_report(
        job="upload",
        started=started,
        finished=finished,
        counts=counts,
        failures=failures,
        client_stats=snapshot,
        extra=extra,
        nbytes=run.bytes_sent,
        stopped=stopped,
    )
