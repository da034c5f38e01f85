"""The engine's shared parts: errors without exit codes or flags, Status, the runner, the one timestamp parser."""

from __future__ import annotations

import json
import sqlite3
import sys

import anyio
import pytest

from cvbulk.pipeline._shared import is_uuid, parse_timestamp
from cvbulk.pipeline.engine import NullProgress, ProgressSink, run_job, unwrap
from cvbulk.pipeline.errors import ConfigError, PipelineError, ProjectNotFound, StateFileError
from cvbulk.pipeline.journal import Journal, JournalEntry
from cvbulk.pipeline.status import FAILURE_STATUSES, Status

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


def test_an_error_names_options_by_field_and_a_front_end_renders_them():
    exc = ConfigError("{opt:max_concurrency} must be at least 1 (or pass {opt:dry_run})")
    assert str(exc) == "max_concurrency must be at least 1 (or pass dry_run)"
    assert exc.options == ("max_concurrency", "dry_run")
    assert exc.render(lambda n: "--" + n.replace("_", "-")) == "--max-concurrency must be at least 1 (or pass --dry-run)"
    assert not hasattr(exc, "exit_code")
    assert isinstance(StateFileError("x"), ConfigError) and not isinstance(ProjectNotFound("x"), ConfigError)
    assert isinstance(ProjectNotFound("x"), PipelineError)


def test_status_is_its_word_in_dicts_json_and_sqlite(tmp_path):
    assert Status.ERROR == "error" and {Status.ERROR: 1} == {"error": 1} and "error" in FAILURE_STATUSES
    assert f"{Status.UPLOADED}" == "uploaded" and json.dumps({Status.FAILED: Status.SKIPPED}) == '{"failed": "skipped"}'
    path = tmp_path / "s.sqlite"
    with Journal.open(path, job="upload", fingerprint={}) as j:
        j.record([JournalEntry("a", 1, 1, None, Status.REJECTED, reason="bad")])
        got = j.get("a")
    assert got is not None and got.status is Status.REJECTED
    rows = sqlite3.connect(path).execute("select status, typeof(status) from entries").fetchall()
    assert rows == [("rejected", "text")]  # older state files (plain words) read the same


def test_a_state_file_that_is_not_sqlite_is_a_state_file_error(tmp_path):
    bad = tmp_path / "state.sqlite"
    bad.write_bytes(b"this is not a database" * 100)

    async def main():
        from cvbulk.pipeline.engine import open_journal

        await open_journal(bad, job="upload", fingerprint={})

    with pytest.raises(StateFileError, match="state"):
        anyio.run(main)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T14:30:00.1234567Z", 1795444200.123456),  # Azure's 7 digits (fromisoformat < 3.11 refuses)
        ("2026-11-23T14:30:00Z", 1795444200.0),
        ("2026-11-23T15:30:00.5+01:00", 1795444200.5),
        ("2026-11-23T14:30:00", 1795444200.0),  # no zone: UTC, as the service writes (the client's rule)
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_one_timestamp_parser(text, expected):
    got = parse_timestamp(text)
    assert got == expected if expected is None else abs(got - expected) < 1e-6


def test_is_uuid():
    assert is_uuid(" 0f8fad5b-d9cb-469f-a165-70867728950e ") and not is_uuid("birds")


async def test_run_job_surfaces_a_stage_error_as_itself_and_closes_the_journal(tmp_path):
    journal = Journal.open(tmp_path / "j.sqlite", job="upload", fingerprint={})
    seen: list[str] = []

    class Sink(NullProgress):
        def finished(self) -> None:
            seen.append("finished")

    async def stages() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep_forever)
            raise ConfigError("boom")

    with pytest.raises(ConfigError, match="boom"):
        await run_job(None, journal, Sink(), stages)
    assert seen == ["finished"]
    with pytest.raises(ValueError, match="closed"):
        journal.get("x")


async def test_unwrap_skips_cancellations():
    err = ValueError("real")
    group = BaseExceptionGroup("g", [anyio.get_cancelled_exc_class()(), BaseExceptionGroup("h", [err])])
    assert unwrap(group) is err


def test_null_progress_is_a_sink():
    sink: ProgressSink = NullProgress()
    sink.started(None)
    sink.advanced(ok=1)
    sink.finished()
