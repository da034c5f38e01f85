from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from cvbulk.pipeline.journal import (
    DUPLICATE,
    ERROR,
    FAILED,
    FAILURE_STATUSES,
    FINAL_OK,
    PREDICTED,
    REJECTED,
    SENDING,
    SKIPPED,
    UPLOADED,
    Journal,
    JournalEntry,
    JournalMismatch,
    needs_work,
)

FP = {"project": "p-1", "root": "/data/images"}


def entry(key: str, status: str = UPLOADED, **kw) -> JournalEntry:
    base = dict(size=100, mtime_ns=1_000, sha256="ab" * 32)
    base.update(kw)
    return JournalEntry(key=key, status=status, **base)


def test_record_get_roundtrip(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "state.db", job="upload", fingerprint=FP) as j:
        e = entry(
            "Hemlock/ü 1.jpg",
            image_id="img-1",
            fixes=("downscaled 12000x800 -> 10240x683",),
            extra={"tags": ["Hemlock"], "regions": 2},
        )
        j.record([e, entry("b.jpg", REJECTED, reason="not an image:\nheader is text")])
        got = j.get("Hemlock/ü 1.jpg")
        assert got == e
        assert got is not None and got.updated is not None
        assert j.get("b.jpg").reason == "not an image: header is text"  # one line
        assert j.get("missing.jpg") is None
        assert j.counts() == {UPLOADED: 1, REJECTED: 1}
        assert len(j) == 2


def test_annotated_lists_fixes_and_notes_not_every_extra(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "state.db", job="upload", fingerprint=FP) as j:
        j.record(
            [
                entry("by-url.jpg", extra={"via": "url"}),  # an extra, but no annotation
                entry("fixed.jpg", fixes=("converted CMYK -> RGB",), extra={"via": "bytes"}),
                entry("noted.jpg", extra={"note": 'a "note": with quotes', "via": "url"}),
                entry("footnote.jpg", extra={"footnote": "x", "nested": {"note": "y"}}),
                entry("quoted.jpg", extra={"via": '"note": in a value'}),
                entry("plain.jpg"),
            ]
        )
        found = list(j.annotated())
    # the query may let a false candidate through (a nested "note"); the caller reads extra["note"]
    assert [e.key for e in found if e.fixes or (e.extra or {}).get("note")] == ["fixed.jpg", "noted.jpg"]
    assert {e.key for e in found} <= {"fixed.jpg", "noted.jpg", "footnote.jpg"}


def test_upsert_replaces_outcome_and_attempts_only_grow(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.db", job="upload", fingerprint=FP) as j:
        j.mark_sending([entry("a.jpg", SENDING)])
        j.mark_sending(["a.jpg"])
        assert j.get("a.jpg").attempts == 2
        j.record([entry("a.jpg", ERROR, reason="timeout")])
        assert j.get("a.jpg").attempts == 2  # an outcome built with attempts=0 keeps the count
        j.record([entry("a.jpg", DUPLICATE, image_id="i")])
        got = j.get("a.jpg")
        assert (got.status, got.image_id, got.reason, got.attempts) == (DUPLICATE, "i", None, 2)


def test_mark_sending_bare_key_unknown_file(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.db", job="predict", fingerprint=FP) as j:
        j.mark_sending(["new.jpg"])
        got = j.get("new.jpg")
        assert got.status == SENDING and got.size is None and got.attempts == 1
        assert needs_work(got, 1, 1)


def test_get_many_and_iterators(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.db", job="upload", fingerprint=FP) as j:
        statuses = [UPLOADED, REJECTED, FAILED, ERROR, SKIPPED, SENDING]
        batch = [entry(f"f{i:05d}.jpg", statuses[i % len(statuses)], reason=f"r{i}") for i in range(2500)]
        for start in range(0, len(batch), 64):
            j.record(batch[start : start + 64])
        keys = [e.key for e in batch[::3]] + ["nope.jpg"]
        got = j.get_many(keys)
        assert set(got) == set(keys) - {"nope.jpg"}  # crosses the IN-chunk size
        everything = list(j.entries())
        assert [e.key for e in everything] == sorted(e.key for e in batch)  # crosses the page size
        fails = list(j.failures())
        assert {e.status for e in fails} == set(FAILURE_STATUSES)
        assert len(fails) == sum(1 for e in batch if e.status in FAILURE_STATUSES)
        assert len(list(j.entries(SENDING))) == sum(1 for e in batch if e.status == SENDING)
        assert sum(j.counts().values()) == 2500


def test_reopen_keeps_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Journal.open(path, job="upload", fingerprint=FP) as j:
        j.record([entry("a.jpg")])
    with Journal.open(path, job="upload", fingerprint=dict(reversed(list(FP.items())))) as j:
        assert j.get("a.jpg").status == UPLOADED


def test_mismatch_job_and_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Journal.open(path, job="upload", fingerprint=FP).close()
    with pytest.raises(JournalMismatch) as info:
        Journal.open(path, job="predict", fingerprint=FP)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "'upload'" in msg and "'predict'" in msg
    with pytest.raises(JournalMismatch) as info:
        Journal.open(path, job="upload", fingerprint={**FP, "project": "p-2"})
    msg = str(info.value)
    assert "\n" not in msg and "project" in msg and "p-1" in msg and "p-2" in msg
    assert isinstance(info.value, ValueError)


def test_keys_never_stored(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    secret = "0123456789abcdef0123456789abcdef"
    with Journal.open(path, job="upload", fingerprint={**FP, "training_key": secret}) as j:
        j.record([entry("a.jpg", extra={"Prediction-Key": secret, "nested": {"apiKey": secret, "ok": 1}})])
        assert j.get("a.jpg").extra == {"nested": {"ok": 1}}
    for p in tmp_path.iterdir():
        assert secret.encode() not in p.read_bytes()


def test_unknown_status_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.db", job="upload", fingerprint=FP) as j:
        with pytest.raises(ValueError):
            j.record([entry("a.jpg", "done")])
        assert len(j) == 0


@pytest.mark.parametrize("status", sorted(FINAL_OK | {REJECTED, FAILED}))
def test_resume_rule_final_statuses(status: str) -> None:
    e = entry("a.jpg", status, size=10, mtime_ns=5)
    assert not needs_work(e, 10, 5)
    assert needs_work(e, 11, 5)  # size changed
    assert needs_work(e, 10, 6)  # touched


@pytest.mark.parametrize("status", [ERROR, SENDING])
def test_resume_rule_retry_statuses(status: str) -> None:
    assert needs_work(entry("a.jpg", status, size=10, mtime_ns=5), 10, 5)


def test_resume_rule_unknown_file() -> None:
    assert needs_work(None, 1, 1)


async def test_safe_from_worker_threads(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.db", job="predict", fingerprint=FP) as j:

        def work(n: int) -> None:
            for b in range(20):
                keys = [f"t{n}/b{b}/{i}.jpg" for i in range(16)]
                j.mark_sending(keys)
                j.record([entry(k, PREDICTED) for k in keys])
                assert set(j.get_many(keys)) == set(keys)

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(anyio.to_thread.run_sync, work, n)
        assert j.counts() == {PREDICTED: 8 * 20 * 16}


_CHILD = textwrap.dedent(
    """
    import sys
    from cvbulk.pipeline.journal import Journal, JournalEntry
    j = Journal.open(sys.argv[1], job="upload", fingerprint={"root": "/r"})
    b = 0
    while True:
        keys = [f"b{b:06d}/{i:02d}.jpg" for i in range(64)]
        j.mark_sending([JournalEntry(k, 1, 1, None, "sending") for k in keys])
        j.record([JournalEntry(k, 1, 1, "x" * 64, "uploaded", image_id=f"id-{b}-{i}",
                               extra={"pad": "y" * 200}) for i, k in enumerate(keys)])
        print(b, flush=True)  # printed only after the commit returned
        b += 1
    """
)


@pytest.mark.timeout(60)
def test_kill_9_during_writes_loses_no_committed_batch(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    path = tmp_path / "state.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for round_ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, env=env, text=True
        )
        try:
            assert child.stdout is not None
            wait_for = rnd.randrange(3, 200)  # past WAL auto-checkpoints too
            for _ in range(wait_for):
                line = child.stdout.readline()
                assert line, f"child died early (seed {seed})"
            # Kill at a random point inside the write loop (a spin, not a sleep to reach a state).
            deadline = time.perf_counter() + rnd.random() * 0.02
            while time.perf_counter() < deadline:
                pass
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            printed = [int(x) for x in child.stdout.read().split()]
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        committed = wait_for + len(printed)  # batches 0 .. committed-1 were reported committed

        con = sqlite3.connect(path)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        with Journal.open(path, job="upload", fingerprint={"root": "/r"}) as j:
            per_batch: dict[str, set[str]] = {}
            for e in j.entries():
                per_batch.setdefault(e.key.split("/")[0], set()).add(e.status)
                assert e.status in {"sending", "uploaded"}
            for b in range(committed):
                assert per_batch.pop(f"b{b:06d}") == {"uploaded"}, f"batch {b} lost (seed {seed})"
            # At most the batch in flight remains, and it is whole: 64 rows of one status.
            assert len(per_batch) <= 1, (seed, round_)
            counts = j.counts()
            assert sum(counts.values()) % 64 == 0
        path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def test_lookups_use_the_key_index_at_100k(tmp_path: Path) -> None:
    # Speed itself is measured in benchmarks/; here we check the design that makes it fast:
    # lookups are index searches, not a scan per key, and 100k entries round-trip.
    n = 100_000
    path = tmp_path / "s.db"
    with Journal.open(path, job="upload", fingerprint=FP) as j:
        keys = [f"dir{i % 100:03d}/img_{i:06d}.jpg" for i in range(n)]
        for start in range(0, n, 64):
            j.record([entry(k) for k in keys[start : start + 64]])
        for k in random.Random(1).sample(keys, 2_000):
            assert j.get(k) is not None
        for start in range(0, n, 4096):
            chunk = keys[start : start + 256]
            assert len(j.get_many(chunk)) == len(chunk)
        assert j.counts() == {UPLOADED: n}
    con = sqlite3.connect(path)
    plan = " ".join(
        str(row[-1]) for row in con.execute("EXPLAIN QUERY PLAN SELECT * FROM entries WHERE key = ?", ("x",))
    )
    con.close()
    assert "SEARCH" in plan and "SCAN" not in plan, plan


def test_refuses_files_that_are_not_state_files(tmp_path: Path) -> None:
    text = tmp_path / "report.json"
    text.write_text('{"not": "sqlite"}' * 100)
    with pytest.raises(JournalMismatch, match="not a cvbulk state file"):
        Journal.open(text, job="upload", fingerprint=FP)
    other = tmp_path / "emulator.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE images (id TEXT)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(JournalMismatch, match="another SQLite database"):
        Journal.open(other, job="upload", fingerprint=FP)
    assert other.read_bytes() == before  # not even switched to WAL


def test_closed_journal_says_so(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "s.db", job="upload", fingerprint=FP)
    j.close()
    j.close()
    with pytest.raises(ValueError, match="closed"):
        j.get("a.jpg")
