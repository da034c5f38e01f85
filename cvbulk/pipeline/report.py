"""The JSON report of a run: counts per status, every failure with its reason, throughput, retries, 429s.

Keys never appear in a report: besides the pipeline never handing a credential to this module,
:func:`build_report` and :func:`write_report` drop every field named like a credential ("key",
"api_key", "Prediction-Key", "apiKey", "secret", ...) anywhere in the tree, as a belt-and-braces guard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cvbulk.pipeline._atomic import atomic_write_bytes
from cvbulk.pipeline._scrub import scrub_keys
from cvbulk.pipeline.journal import FAILURE_STATUSES, FINAL_OK, SKIPPED

__all__ = ["REPORT_VERSION", "build_report", "write_report", "scrub_keys", "merge_client_stats"]

REPORT_VERSION = 1

_STAT_SUMS = (
    "requests",
    "retries",
    "throttled",
    "server_errors",
    "transport_errors",
    "bytes_sent",
    "bytes_received",
)


def _timestamp(value: float | datetime) -> tuple[float, str]:
    """Epoch seconds and ISO 8601 UTC text for a time given either way."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp(), value.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    moment = datetime.fromtimestamp(float(value), tz=timezone.utc)
    return float(value), moment.isoformat(timespec="milliseconds")


def merge_client_stats(client_stats: Any) -> dict[str, Any] | None:
    """Sum the counters of one ``ClientStats.snapshot()`` dict, or of several.

    Accepts one snapshot, a sequence of snapshots, or a mapping of name -> snapshot (e.g.
    ``{"training": ..., "prediction": ...}``). Latency percentiles are not additive: the largest
    of each is kept, which is an upper bound.
    """
    if client_stats is None:
        return None
    if isinstance(client_stats, Mapping):
        if any(name in client_stats for name in _STAT_SUMS):
            parts = [client_stats]
        else:
            parts = [v for v in client_stats.values() if isinstance(v, Mapping)]
    else:
        parts = [p for p in client_stats if isinstance(p, Mapping)]
    merged: dict[str, Any] = {name: 0 for name in _STAT_SUMS}
    latency: dict[str, float] = {}
    for part in parts:
        for name in _STAT_SUMS:
            merged[name] += int(part.get(name) or 0)
        for q, ms in (part.get("latency_ms") or {}).items():
            if isinstance(ms, (int, float)):
                latency[q] = max(latency.get(q, 0.0), float(ms))
    if latency:
        merged["latency_ms"] = latency
    return merged


def _failure(item: Any) -> dict[str, Any]:
    """A failure as {path, status, reason}: from a dict or a JournalEntry-like object."""
    if isinstance(item, Mapping):
        path = item.get("path", item.get("relpath"))
        status, reason = item.get("status"), item.get("reason")
        others = {k: v for k, v in item.items() if k not in {"path", "relpath", "status", "reason"}}
    else:
        path = getattr(item, "path", None) or getattr(item, "key", None)
        status, reason = getattr(item, "status", None), getattr(item, "reason", None)
        others = {}
        if getattr(item, "attempts", 0):
            others["attempts"] = item.attempts
    reason_text = " ".join(str(reason).split()) if reason else (f"{status}" if status else "unknown")
    return {"path": path, "status": status, "reason": reason_text, **others}


def build_report(
    *,
    job: str,
    started: float | datetime,
    finished: float | datetime,
    counts: Mapping[str, int],
    failures: Iterable[Any],
    client_stats: Any = None,
    extra: Mapping[str, Any] | None = None,
    nbytes: int | None = None,
    stopped: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of one run, as a JSON-ready dict.

    ``counts``: files per status (e.g. ``Journal.counts()``); ``failures``: dicts with path /
    status / reason, or journal entries (``Journal.failures()``); ``client_stats``: one or more
    ``ClientStats.snapshot()`` dicts. Throughput counts the files that reached an outcome other
    than ``skipped`` per second of wall time; MB/s uses ``nbytes`` when given, else the bytes the
    client sent (1 MB = 10^6 bytes). ``stopped`` (``engine.Stop.report``): why a run ended before its end
    (``reason``, one line) and how many items it listed but did not reach (``not_reached``).
    """
    start_s, start_iso = _timestamp(started)
    end_s, end_iso = _timestamp(finished)
    elapsed = max(end_s - start_s, 0.0)
    counts = {str(status): int(n) for status, n in sorted(counts.items()) if n}
    total = sum(counts.values())
    processed = total - counts.get(SKIPPED, 0) - counts.get("sending", 0)
    stats = merge_client_stats(client_stats)
    if nbytes is None and stats is not None:
        nbytes = stats["bytes_sent"]
    failure_list = [_failure(f) for f in failures]
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "job": job,
        "started": start_iso,
        "finished": end_iso,
        "elapsed_s": round(elapsed, 3),
        "total": total,
        "counts": counts,
        "succeeded": sum(n for s, n in counts.items() if s in FINAL_OK),
        "failed": sum(n for s, n in counts.items() if s in FAILURE_STATUSES),
        "throughput": {
            "images_per_s": round(processed / elapsed, 3) if elapsed > 0 else None,
            "mb_per_s": round(nbytes / 1e6 / elapsed, 3) if elapsed > 0 and nbytes is not None else None,
            "bytes": nbytes,
        },
        "retries": stats["retries"] if stats else 0,
        "throttled_429": stats["throttled"] if stats else 0,
        "client": stats,
        "failures": failure_list,
    }
    if stopped:
        report["stopped"] = dict(stopped)
    if extra:
        report["extra"] = dict(extra)
    return scrub_keys(report)


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    """Write ``report`` as JSON at ``path`` atomically (temporary file, fsync, ``os.replace``).

    A reader (or a kill) never sees a half-written report: either the old file or the new one.
    """
    path = Path(path)
    text = json.dumps(scrub_keys(report), indent=2, ensure_ascii=False, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"), suffix=".tmp", fsync=True, keep_mode=True)
    return path
