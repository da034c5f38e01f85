"""Helpers shared by the reliability tests (issue 9): generated trees, a fast-failing client, the
project's contents read back from the emulator, SQLite integrity checks, cvbulk run as a process.

Each fault test records what it measured with ``measure(name, **row)``: the row rides on the test's report
(``user_properties``, so that it reaches the main process from a pytest-xdist worker too); with
``CVBULK_RELIABILITY_TABLE=path`` set, tests/conftest.py writes the rows there as JSON at the end of the
session, which is where the numbers of docs/reliability.md come from.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import anyio
import pytest

from tests.conftest import MEASURED_PROPERTY
from tests.corpus import make_tree

REPO = Path(__file__).resolve().parents[2]
ENV_NAMES = (
    "VISION_TRAINING_ENDPOINT",
    "VISION_TRAINING_KEY",
    "VISION_PREDICTION_ENDPOINT",
    "VISION_PREDICTION_KEY",
    "VISION_PREDICTION_RESOURCE_ID",
    "CVBULK_TIER",
)

_RUNNING: list[pytest.Item] = []  # the test now running in this process (measure's target)


def measure(name: str, **row: Any) -> None:
    """Record a row of the reliability table (``name`` -> ``row``) on the running test's report."""
    assert _RUNNING, "measure() is called from inside a tests/reliability test"
    _RUNNING[-1].user_properties.append((MEASURED_PROPERTY, {name: row}))


@pytest.fixture(autouse=True)
def _no_vision_env(monkeypatch, request):
    """Connection settings come from each test, never from the developer's shell."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    _RUNNING.append(request.node)
    yield
    _RUNNING.remove(request.node)


# -- trees ------------------------------------------------------------------------------------------


def small_tree(root: Path, per_tag: int = 120, *, tags: Iterable[str] = ("a", "b"), seed: int = 0) -> dict[str, str]:
    """Tiny distinct jpgs, a folder per tag: relpath -> tag."""
    return make_tree(root, {t: per_tag for t in tags}, size=(24, 24), seed=seed)


def sha_of_files(root: Path, relpaths: Iterable[str]) -> dict[str, str]:
    """relpath -> sha256 of the file's bytes (small jpgs pass through prepare untouched)."""
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in relpaths}


# -- clients --------------------------------------------------------------------------------------


def patient_retry(max_elapsed: float = 60.0):
    """Enough attempts to ride out the faults, short waits so that a test takes seconds."""
    from cvbulk.client import RetryPolicy

    return RetryPolicy(max_attempts=30, base=0.02, cap=0.25, max_elapsed=max_elapsed)


def outage_retry(seconds: float = 60.0):
    """For a service that goes away for a while (a process restarted): the budget is time, not attempts.
    A refused connection fails at once, so an attempt budget is spent in ~3 s however long the restart
    takes on a loaded machine; ``seconds`` of retrying (waits of at most 0.25 s) carry the run through."""
    from cvbulk.client import RetryPolicy

    return RetryPolicy(max_attempts=1_000_000, base=0.02, cap=0.25, max_elapsed=seconds)


def training_client(emu, **kw):
    from cvbulk.client import Pacer, TrainingClient

    kw.setdefault("retry", patient_retry())
    kw.setdefault("pacer", Pacer.for_tier("unlimited", max_concurrency=16))
    return TrainingClient(emu.endpoint, emu.training_key, **kw)


def prediction_client(emu, **kw):
    from cvbulk.client import Pacer, PredictionClient

    kw.setdefault("retry", patient_retry())
    kw.setdefault("pacer", Pacer.for_tier("unlimited", max_concurrency=16))
    return PredictionClient(emu.endpoint, emu.prediction_key, **kw)


async def project_images(client, project_id: str) -> list[dict[str, Any]]:
    """Every image of the project: id, content sha256 (from its blob URI) and tag ids."""
    out = []
    async for image in client.iter_images(project_id, page_size=256):
        uri = image.original_image_uri or ""
        sha = urlparse(uri).path.rstrip("/").split("/")[-1]
        out.append({"id": image.id, "sha": sha, "tags": sorted(t.tag_id for t in (image.tags or ()))})
    return out


async def check_project(client, project_id: str, expected_sha: dict[str, str], tag_of: dict[str, str]) -> dict[str, int]:
    """The project holds exactly the expected contents, each once, with its tag; returns the counts."""
    images = await project_images(client, project_id)
    tags = {t.name: t.id for t in await client.get_tags(project_id)}
    shas = [im["sha"] for im in images]
    expected = set(expected_sha.values())
    duplicates = len(shas) - len(set(shas))
    lost = len(expected - set(shas))
    extra = len(set(shas) - expected)
    count = await client.get_image_count(project_id)
    assert count == len(images), (count, len(images))
    assert duplicates == 0, f"{duplicates} images twice in the project"
    assert lost == 0, f"{lost} images missing from the project"
    assert extra == 0, f"{extra} images in the project that were never sent"
    by_sha = {im["sha"]: im for im in images}
    for rel, sha in expected_sha.items():
        assert by_sha[sha]["tags"] == [tags[tag_of[rel]]], rel
    per_tag = {name: await client.get_tagged_image_count(project_id, tag_ids=[tid]) for name, tid in tags.items()}
    for name in tags:
        assert per_tag[name] == sum(1 for t in tag_of.values() if t == name), (name, per_tag)
    return {"in_project": len(images), "duplicates": duplicates, "lost": lost}


# -- SQLite ---------------------------------------------------------------------------------------


def integrity(path: Path) -> str:
    """PRAGMA integrity_check of a SQLite file (its WAL, if any, is read with it)."""
    db = sqlite3.connect(str(path), timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def journal_rows(path: Path) -> dict[str, dict[str, Any]]:
    """key -> row of a cvbulk state file, read without a Journal (as any SQLite tool would)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return {r["key"]: dict(r) for r in db.execute("SELECT * FROM entries")}
    finally:
        db.close()


def journal_count(path: Path, statuses: tuple[str, ...]) -> int:
    """How many rows hold one of ``statuses``; 0 while the file is not there or not ready."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            marks = ",".join("?" * len(statuses))
            return db.execute(f"SELECT COUNT(*) FROM entries WHERE status IN ({marks})", statuses).fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0  # the schema is not written yet


# -- cvbulk as a process --------------------------------------------------------------------------


def cli_env(emu=None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    if emu is not None:
        env["VISION_TRAINING_ENDPOINT"] = emu.endpoint
        env["VISION_TRAINING_KEY"] = emu.training_key
        env["VISION_PREDICTION_ENDPOINT"] = emu.endpoint
        env["VISION_PREDICTION_KEY"] = emu.prediction_key
    env.update(extra)
    return env


def cvbulk(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cvbulk", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def spawn(*args: str, env: dict[str, str], cwd: Path, stdout=None, stderr=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cvbulk", *args], env=env, cwd=cwd,
        stdout=stdout or subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL,
    )


def wait_until(predicate, *, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``predicate`` (a condition on files another process writes) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            return  # it finished first: the caller sees that
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def kill_when(proc: subprocess.Popen, predicate, *, timeout: float, what: str) -> None:
    """SIGKILL ``proc`` once ``predicate`` holds (it must still be running then: a kill that comes too late
    is no kill); the process is gone when this returns, whatever happened."""
    try:
        wait_until(predicate, timeout=timeout, what=what, proc=proc)
        assert proc.poll() is None, f"finished before the kill ({what})"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- the emulator as its own process, crashed and restarted -----------------------------------------


def restartable_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a server a test restarts on the same port.
    While it is down, a port of the ephemeral range can be taken by any process's outgoing connection or
    ``bind(0)`` (other xdist workers make thousands); one below the range is taken only by an explicit bind."""
    import random
    import socket

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rnd = random.Random()
    for _ in range(200):
        port = rnd.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def start_emulator_process(port: int, data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python -m cvbulk emulator`` as a user runs it; (process, endpoint) once it listens."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "cvbulk", "emulator", "--port", str(port), "--data", str(data),
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, (line, proc.poll())
    return proc, line.split("listening on ", 1)[1].split()[0]


class CrashingEmulator:
    """An emulator process that ``crash_and_restart`` SIGKILLs mid-run (no clean shutdown) and starts again
    on the same port with the same data. It stands where the fault tests take an emulator: the endpoint and
    default keys, and ``set_faults`` / ``set_latency`` that switch nothing (the crash is the fault).
    Use it as a context manager: every process it started is stopped on the way out."""

    def __init__(self, data: Path, *extra: str) -> None:
        from cvbulk.emulator import DEFAULT_PREDICTION_KEY, DEFAULT_PREDICTION_RESOURCE_ID, DEFAULT_TRAINING_KEY

        self.training_key = DEFAULT_TRAINING_KEY
        self.prediction_key = DEFAULT_PREDICTION_KEY
        self.prediction_resource_id = DEFAULT_PREDICTION_RESOURCE_ID
        self.data = data
        first, self.endpoint = start_emulator_process(restartable_port(), data, *extra)
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.processes = [first]
        self.restarted = False

    def set_faults(self, faults) -> None:
        pass

    def set_latency(self, latency) -> None:
        pass

    async def crash_and_restart(self, client, *, after_requests: int) -> None:
        """Once ``client`` has sent ``after_requests`` requests: SIGKILL, then start anew (data kept)."""
        with anyio.fail_after(60):
            while client.stats.requests < after_requests:
                await anyio.sleep(0.005)  # watching the client's counters
        victim = self.processes[-1]
        os.kill(victim.pid, signal.SIGKILL)
        await anyio.to_thread.run_sync(victim.wait)
        second, _ = await anyio.to_thread.run_sync(start_emulator_process, self.port, self.data)
        self.processes.append(second)
        self.restarted = True

    def __enter__(self) -> CrashingEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)


# -- a published model ----------------------------------------------------------------------------


@contextmanager
def published_emulator(tmp_path_factory: pytest.TempPathFactory, folder: str, seed: int) -> Iterator[Any]:
    """A threaded emulator (seeded) with a model published as "prod" (its project id in ``emu.model``)."""
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    tmp = tmp_path_factory.mktemp(folder)
    with EmulatorThread(EmulatorConfig(data_dir=tmp / "emulator", seed=seed)) as emu:
        emu.model = anyio.run(train_and_publish, emu, "prod", tmp)[0]
        yield emu


async def train_and_publish(emu, name: str, tmp: Path, *, per_tag: int = 6) -> tuple[str, dict[str, str]]:
    """A classification project trained on a small tree and published as ``name``: (project id, tag ids)."""
    from cvbulk.client import TrainingClient

    root = tmp / f"train-{name}"
    tree = make_tree(root, {"a": per_tag, "b": per_tag}, size=(32, 32), seed=77)
    async with TrainingClient(emu.endpoint, emu.training_key) as training:
        project = await training.create_project(f"model-{name}")
        tags = {t: (await training.create_tag(project.id, t)).id for t in ("a", "b")}
        for tag in ("a", "b"):
            images = [(Path(rel).name, (root / rel).read_bytes()) for rel, t in tree.items() if t == tag]
            summary = await training.create_images_from_data(project.id, images, tag_ids=[tags[tag]])
            assert summary.is_batch_successful
        iteration = await training.train_project(project.id)
        with anyio.fail_after(60):
            while iteration.status != "Completed":
                assert iteration.status in ("Training", "Queued", "Staging"), iteration.status
                await anyio.sleep(0.05)  # polling the service's status, as a user would
                iteration = await training.get_iteration(project.id, iteration.id)
        await training.publish_iteration(project.id, iteration.id, name, emu.prediction_resource_id)
    return project.id, tags


# -- prediction output ----------------------------------------------------------------------------


def output_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a prediction CSV or JSONL output, as dicts (path, status, reason, ...)."""
    import csv

    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def one_row_each(path: Path, expected: Iterable[str]) -> list[dict[str, str]]:
    """Exactly one row per expected path, and nothing else."""
    rows = output_rows(path)
    paths = [r["path"] for r in rows]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    assert not twice, f"{len(twice)} paths with more than one row, e.g. {twice[:3]}"
    missing = sorted(set(expected) - set(paths))
    assert not missing, f"{len(missing)} paths without a row, e.g. {missing[:3]}"
    stray = sorted(set(paths) - set(expected))
    assert not stray, f"rows for unknown paths: {stray[:3]}"
    return rows
