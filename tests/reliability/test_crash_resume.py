"""``cvbulk upload`` and ``cvbulk predict`` killed with SIGKILL at several points, then resumed.

The processes are real (``python -m cvbulk ...``) against an emulator in a thread of the test process
whose answers are slowed a little, so that a kill lands mid-run. After every kill the state file must
pass ``PRAGMA integrity_check``; after the last resume the project holds exactly the tree's images,
once each by content, each file's journal row says ``uploaded`` (a re-sent image that the service
answers ``OKDuplicate`` is our own and counts as uploaded), and a prediction output holds exactly one
row per image.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cvbulk.emulator import Latency

from .conftest import (
    check_project,
    cli_env,
    cvbulk,
    integrity,
    journal_count,
    journal_rows,
    measure,
    one_row_each,
    published_emulator,
    sha_of_files,
    small_tree,
    spawn,
    training_client,
    wait_until,
)

PER_TAG = 120


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with published_emulator(tmp_path_factory, "crash", seed=21) as emu:
        emu.set_latency(Latency(per_request=0.06))
        yield emu


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL; whether the process was still running (a kill that came too late is no kill)."""
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return alive


def _upload_argv(root: Path, project: str, state: Path) -> list[str]:
    return ["upload", str(root), "--project", project, "--create", "--tier", "unlimited",
            "--batch-bytes", "6000", "--max-concurrency", "4", "--state", str(state),
            "--report", str(state.with_suffix(".report.json"))]


def _resume_to_the_end(argv: list[str], env, cwd: Path) -> subprocess.CompletedProcess:
    done = cvbulk(*argv, env=env, cwd=cwd, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done


async def _check_upload(emu, name: str, root: Path, tag_of: dict[str, str], state: Path) -> dict:
    rows = journal_rows(state)
    assert set(rows) == set(tag_of)
    statuses = {k: r["status"] for k, r in rows.items()}
    assert set(statuses.values()) == {"uploaded"}, {s for s in statuses.values()}
    async with training_client(emu) as client:
        (project,) = [p for p in await client.get_projects() if p.name == name]
        return await check_project(client, project.id, sha_of_files(root, tag_of), tag_of)


@pytest.mark.timeout(120)
async def test_upload_killed_after_k_entries_then_resumed(emu, tmp_path):
    root = tmp_path / "tree"
    tag_of = small_tree(root, PER_TAG, seed=31)
    state = tmp_path / "upload.sqlite"
    env = cli_env(emu)
    argv = _upload_argv(root, "crash-k", state)
    kills = 0
    for k in (1, 30, 90, 170):
        proc = spawn(*argv, env=env, cwd=tmp_path)
        wait_until(lambda: journal_count(state, ("uploaded",)) >= k, timeout=60, what=f"{k} entries", proc=proc)
        kills += _kill(proc)
        assert integrity(state) == "ok"
    assert kills >= 3, "the runs finished before they could be killed: slow the emulator down"
    _resume_to_the_end(argv, env, tmp_path)
    counts = await _check_upload(emu, "crash-k", root, tag_of, state)
    measure("upload: SIGKILL after 1/30/90/170 entries, resumed", images_sent=len(tag_of), kills=kills, **counts)


@pytest.mark.timeout(120)
async def test_upload_killed_at_random_times_then_resumed(emu, tmp_path):
    """Kills at seeded random moments: some land while a batch is in flight, some during the
    journal's own write; the state file must stay sound through every one."""
    root = tmp_path / "tree"
    tag_of = small_tree(root, PER_TAG, seed=32)
    state = tmp_path / "upload.sqlite"
    env = cli_env(emu)
    argv = _upload_argv(root, "crash-random", state)
    rnd = random.Random(2026)
    kills = 0
    for _ in range(6):
        proc = spawn(*argv, env=env, cwd=tmp_path)
        before = journal_count(state, ("uploaded",))
        # Wait for progress first (so that every run gets somewhere), then a random extra moment.
        wait_until(lambda: journal_count(state, ("uploaded",)) > before, timeout=60, what="progress", proc=proc)
        extra = rnd.uniform(0.0, 0.25)
        try:
            proc.wait(extra)  # the random moment: the process runs meanwhile
        except subprocess.TimeoutExpired:
            pass
        kills += _kill(proc)
        assert integrity(state) == "ok"
    assert kills >= 3
    _resume_to_the_end(argv, env, tmp_path)
    counts = await _check_upload(emu, "crash-random", root, tag_of, state)
    measure("upload: SIGKILL at 6 random moments (seed 2026), resumed", images_sent=len(tag_of), kills=kills, **counts)


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
async def test_predict_killed_then_resumed_one_row_per_image(emu, tmp_path, suffix):
    root = tmp_path / "dump"
    tree = small_tree(root, PER_TAG, seed=33)
    out = tmp_path / f"scores.{suffix}"
    env = cli_env(emu)
    argv = ["predict", str(root), "--project", emu.model, "--published-name", "prod", "--output", str(out),
            "--tier", "unlimited", "--max-concurrency", "4"]
    rnd = random.Random(7)
    kills = 0
    for k in (1, 40, 100, 160, 200):
        proc = spawn(*argv, env=env, cwd=tmp_path)
        wait_until(lambda: _lines(out) >= k, timeout=60, what=f"{k} rows", proc=proc)
        try:
            proc.wait(rnd.uniform(0.0, 0.1))
        except subprocess.TimeoutExpired:
            pass
        kills += _kill(proc)
        assert integrity(out.with_name(out.name + ".state")) == "ok"
    assert kills >= 3
    # A kill in the middle of writing a row: cut the last row in half (its image must be scored again).
    data = out.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    out.write_bytes(data[: last + (len(data) - last) // 2])
    _resume_to_the_end(argv, env, tmp_path)
    rows = one_row_each(out, tree)
    assert {r["status"] for r in rows} == {"predicted"}
    statuses = {r["status"] for r in journal_rows(out.with_name(out.name + ".state")).values()}
    assert statuses == {"predicted"}, statuses
    measure(f"predict ({suffix}): SIGKILL at 5 points, resumed", images_sent=len(tree), kills=kills,
            rows=len(rows), duplicates=0, lost=0)


_WRITER = r"""
import sys
from cvbulk.pipeline.journal import Journal, JournalEntry
journal = Journal.open(sys.argv[1], job="upload", fingerprint={"root": "/r", "project_id": "p"})
start = int(sys.argv[2])
for b in range(start, start + 100000):
    journal.mark_sending([JournalEntry(f"b{b:06d}/{j:02d}", 10, 1, None, "sending") for j in range(64)])
    journal.record([JournalEntry(f"b{b:06d}/{j:02d}", 10, 1, "ab" * 32, "uploaded", image_id=f"id-{b}-{j}",
                                 reason=None, fixes=("downscaled",)) for j in range(64)])
    print(b, flush=True)  # committed
"""


@pytest.mark.timeout(60)
def test_state_file_survives_sigkill_during_its_own_writes(tmp_path):
    """A process that does nothing but journal batches (intent, then outcome: a transaction each) is
    killed at seeded random moments, so most kills land inside a write. After each kill the file is
    sound, every batch the writer saw committed is complete, and no batch is half-recorded."""
    state = tmp_path / "state.sqlite"
    env = cli_env(None)
    rnd = random.Random(99)
    start = 0
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(state), str(start)], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # at least one batch committed
        assert first.strip(), proc.stderr.read()
        try:
            proc.wait(rnd.uniform(0.0, 0.15))
        except subprocess.TimeoutExpired:
            pass
        assert _kill(proc)
        committed = [int(x) for x in (first + proc.stdout.read()).split()]
        assert integrity(state) == "ok"
        rows = journal_rows(state)
        per_batch: dict[str, list[str]] = {}
        for key, row in rows.items():
            per_batch.setdefault(key.split("/")[0], []).append(row["status"])
        for batch, statuses in per_batch.items():
            assert len(statuses) == 64, f"{batch}: {len(statuses)} of 64 rows"  # all or nothing
            assert len(set(statuses)) == 1, f"{batch}: mixed {set(statuses)}"  # one transaction
        for b in committed:
            assert per_batch.get(f"b{b:06d}") == ["uploaded"] * 64, f"committed batch {b} lost"
        start = max(committed) + 1000  # the next run writes new batches after these
