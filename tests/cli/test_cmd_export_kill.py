"""``cvbulk export`` killed with SIGKILL three times mid-run, then resumed: exactly the project's images,
none downloaded again once it was recorded as exported (each journal row's ``attempts`` stays 1)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from cvbulk.client import Pacer, TrainingClient
from cvbulk.emulator import EmulatorConfig, EmulatorThread, Latency
from tests.pipeline.export._build import build_project

from .test_cmd_export import REPO, env_for

pytestmark = pytest.mark.timeout(120)
N = 300


def exported_rows(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM entries WHERE status = 'exported'").fetchone()[0])
    except sqlite3.Error:
        return 0


def rows(state: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {k: (s, a) for k, s, a in db.execute("SELECT key, status, attempts FROM entries")}


async def _build(emulator) -> tuple[str, set[str]]:
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        pid = await build_project(c, "many", "detection", N)
        shas = set()
        async for image in c.iter_images(pid):
            shas.add(hashlib.sha256(await c.download(image.original_image_uri)).hexdigest())
        return pid, shas


def _slow_export(emulator, tmp_path: Path, per_request: float, fmt: str, *more: str):
    """A built project, the emulator slowed to ``per_request`` s a call, and the export command line:
    (project id, image sha256s, environment, output folder, state file, argv)."""
    project_id, shas = anyio.run(_build, emulator)
    emulator.set_latency(Latency(per_request=per_request))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "cvbulk", "export", str(out), "--project", project_id, "--format", fmt,
            "--tier", "unlimited", "--max-concurrency", "2", *more, "--progress", "none"]
    return project_id, shas, env_for(emulator), out, out / ".cvbulk" / "export.sqlite", argv


def test_export_killed_three_times_then_resumed(tmp_path):
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu")) as emulator:
        project_id, shas, env, out, state, argv = _slow_export(emulator, tmp_path, 0.03, "coco", "--json")
        kills = 0
        for target in (40, 110, 180):
            proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while exported_rows(state) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
            assert 0 < exported_rows(state) < N
        assert kills == 3
        emulator.set_latency(Latency())
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        assert report["extra"]["count_check"]["ok"]
        final = rows(state)
        assert len(final) == N and {s for s, _ in final.values()} == {"exported"}
        assert {a for _, a in final.values()} == {1}  # no image recorded as exported was downloaded again
        # the last run downloaded exactly what the killed runs had not recorded
        assert report["extra"]["downloads"] == report["counts"]["exported"] < N
        on_disk = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "images").iterdir()
                   if not p.name.startswith(".")}
        assert on_disk == shas
        assert not [p for p in (out / "images").iterdir() if p.name.startswith(".")]  # no half-written file
        assert REPO.exists()


async def _delete_one_exported(emulator, state: Path) -> str:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
        (image_id,) = db.execute("SELECT key FROM entries WHERE status = 'exported' LIMIT 1").fetchone()
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        (project,) = await c.get_projects()
        await c.delete_images(project.id, [image_id])
    return str(image_id)


def test_a_project_that_changes_under_the_export_fails_it_loudly_and_a_rerun_heals(tmp_path):
    """An image deleted mid-run (after its export) shifts the service's paging: the counts at the end
    differ, the export says so in one line and exits 1; run again, it completes and agrees."""
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu")) as emulator:
        project_id, _, env, out, state, argv = _slow_export(emulator, tmp_path, 0.02, "csv")
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 60
        while exported_rows(state) < 20 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the export ended before the project changed"
        victim = anyio.run(_delete_one_exported, emulator, state)
        _, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 1, stderr[-2000:]
        lines = [x for x in stderr.splitlines() if "does not match the project" in x]
        assert len(lines) == 1 and lines[0].startswith("cvbulk: error: export does not match the project: ")
        emulator.set_latency(Latency())
        again = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert again.returncode == 0, again.stderr[-2000:]
        listed = (out / "labels.csv").read_text()
        assert victim not in listed and listed.count("\n") == N  # a header and N - 1 images
