from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cvbulk.pipeline.journal import Journal, JournalEntry
from cvbulk.pipeline.report import build_report, merge_client_stats, scrub_keys, write_report

SECRET = "5f4dcc3b5aa765d61d8327deb882cf99"

STATS = {
    "requests": 40,
    "retries": 5,
    "throttled": 3,
    "server_errors": 2,
    "transport_errors": 0,
    "bytes_sent": 50_000_000,
    "bytes_received": 10_000,
    "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 40.0, "max": 90.0},
}


def test_build_report_numbers() -> None:
    report = build_report(
        job="upload",
        started=1_700_000_000.0,
        finished=1_700_000_010.0,
        counts={"uploaded": 90, "duplicate": 5, "rejected": 3, "skipped": 20, "error": 2, "failed": 0},
        failures=[
            {"path": "bad.jpg", "status": "rejected", "reason": "not an image:\n text"},
            {"path": "x.jpg", "status": "error", "reason": None},
        ],
        client_stats=STATS,
        extra={"project": "p-1", "fixes": {"downscaled": 2}},
    )
    assert report["job"] == "upload"
    assert report["started"] == "2023-11-14T22:13:20.000+00:00"
    assert report["elapsed_s"] == 10.0
    assert report["counts"] == {"duplicate": 5, "error": 2, "rejected": 3, "skipped": 20, "uploaded": 90}
    assert report["total"] == 120 and report["succeeded"] == 115 and report["failed"] == 5
    assert report["throughput"] == {"images_per_s": 10.0, "mb_per_s": 5.0, "bytes": 50_000_000}
    assert report["retries"] == 5 and report["throttled_429"] == 3
    assert report["failures"] == [
        {"path": "bad.jpg", "status": "rejected", "reason": "not an image: text"},
        {"path": "x.jpg", "status": "error", "reason": "error"},
    ]
    assert report["extra"] == {"project": "p-1", "fixes": {"downscaled": 2}}
    json.dumps(report)  # JSON-ready


def test_failures_from_journal(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.db", job="upload", fingerprint={}) as j:
        j.record([
            JournalEntry("a.jpg", 1, 1, None, "uploaded"),
            JournalEntry("b.jpg", 1, 1, None, "failed", reason="ErrorImageSize", attempts=2),
        ])
        report = build_report(
            job="upload",
            started=datetime(2026, 1, 1, tzinfo=timezone.utc),
            finished=datetime(2026, 1, 1, 0, 0, 2, tzinfo=timezone.utc),
            counts=j.counts(),
            failures=j.failures(),
            nbytes=3_000_000,
        )
    assert report["failures"] == [{"path": "b.jpg", "status": "failed", "reason": "ErrorImageSize", "attempts": 2}]
    assert report["throughput"]["mb_per_s"] == 1.5
    assert report["retries"] == 0 and report["client"] is None


def test_zero_elapsed_has_no_rate() -> None:
    report = build_report(job="predict", started=5.0, finished=5.0, counts={}, failures=[])
    assert report["throughput"]["images_per_s"] is None and report["total"] == 0


def test_merge_several_clients() -> None:
    merged = merge_client_stats({"training": STATS, "prediction": {**STATS, "latency_ms": {"p50": 30.0}}})
    assert merged["requests"] == 80 and merged["throttled"] == 6
    assert merged["latency_ms"]["p50"] == 30.0 and merged["latency_ms"]["max"] == 90.0
    assert merge_client_stats([STATS, STATS])["retries"] == 10


def test_keys_dropped_everywhere(tmp_path: Path) -> None:
    report = build_report(
        job="upload",
        started=0.0,
        finished=1.0,
        counts={"uploaded": 1},
        failures=[{"path": "a.jpg", "status": "error", "reason": "x", "Training-Key": SECRET}],
        client_stats={**STATS, "api_key": SECRET},
        extra={"prediction_key": SECRET, "nested": [{"KEY": SECRET, "keep": 1}], "ok": True},
    )
    path = write_report(tmp_path / "r" / "report.json", {**report, "trainingKey": SECRET})
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text
    assert json.loads(text)["extra"] == {"nested": [{"keep": 1}], "ok": True}
    assert scrub_keys({"a": {"MonKEY": 1, "b": (1, {"key": 2})}}) == {"a": {"b": [1, {}]}}


def test_write_report_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    write_report(path, {"n": 1})
    assert json.loads(path.read_text()) == {"n": 1}
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_report(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 1}  # the old report is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_tags_that_merely_end_in_key_are_kept() -> None:
    counts = {"monkey": 3, "turkey": 2, "keyboard": 1, "apiKey": "x", "training_key": "x", "Prediction-Key": "x"}
    assert scrub_keys({"per_tag": counts}) == {"per_tag": {"monkey": 3, "turkey": 2, "keyboard": 1}}
