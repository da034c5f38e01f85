"""``cvbulk migrate`` as a user runs it: real processes between two emulators (each in its own thread and
data folder), including one killed with SIGKILL mid-run and resumed."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cvbulk.client import ImageFileCreateEntry, Pacer, Region, TrainingClient
from cvbulk.emulator import EmulatorConfig, EmulatorThread, Latency
from tests.corpus import make_image
from tests.reliability.conftest import kill_when

REPO = Path(__file__).resolve().parents[2]
SOURCE_KEY = "migrate-source-secret-0123456789"
TARGET_KEY = "migrate-target-secret-9876543210"

pytestmark = pytest.mark.timeout(90)


def cvbulk_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cvbulk", *args]


def env_for(source, target) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VISION_TRAINING_ENDPOINT=source.endpoint, VISION_TRAINING_KEY=source.training_key,
        VISION_TARGET_TRAINING_ENDPOINT=target.endpoint, VISION_TARGET_TRAINING_KEY=target.training_key,
        PYTHONPATH=str(REPO),
    )
    env.pop("CVBULK_TIER", None)
    return env


def emulators(tmp_path):
    return (
        EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu-a", training_key=SOURCE_KEY)),
        EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu-b", training_key=TARGET_KEY)),
    )


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    make_image((16, 16), seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def _source_project(emulator, n: int) -> None:
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        domain = next(d for d in await c.get_domains() if d.type == "ObjectDetection")
        project = await c.create_project("tools", domain_id=domain.id)
        tags = [(await c.create_tag(project.id, name)).id for name in ("hammer", "saw", "drill")]
        entries = [
            ImageFileCreateEntry(f"{i}.jpg", _jpeg(i), regions=(Region(tags[i % 3], 0.2, 0.2, 0.5, 0.5),) if i % 7 else ())
            for i in range(n)
        ]
        for start in range(0, n, 64):
            await c.create_images_from_files(project.id, entries[start : start + 64])


async def _count(emulator, name: str) -> int:
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        project = next(p for p in await c.get_projects() if p.name == name)
        return await c.get_image_count(project.id)


def _migrated(state: Path) -> int:
    """Images the killed run has recorded as migrated (read while it writes: WAL allows it)."""
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM entries WHERE status = 'uploaded'").fetchone()[0]
    except sqlite3.Error:
        return 0  # the schema is being created


def _no_keys(*texts: str, files: list[Path] = ()) -> None:
    for text in texts:
        assert SOURCE_KEY not in text and TARGET_KEY not in text
    for f in files:
        data = f.read_bytes()
        assert SOURCE_KEY.encode() not in data and TARGET_KEY.encode() not in data


def test_migrate_between_resources_then_nothing_to_do(tmp_path):
    a, b = emulators(tmp_path)
    with a, b:
        anyio.run(_source_project, a, 100)
        env = env_for(a, b)
        argv = cvbulk_argv("migrate", "--from-project", "tools", "--to-project", "tools-copy", "--create",
                           "--tier", "unlimited", "--state", str(tmp_path / "m.sqlite"), "--json")
        first = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["counts"] == {"uploaded": 100}
        assert report["extra"]["comparison"]["equal"]
        assert report["extra"]["mode"] == "url"
        assert "DIFFERS" not in first.stderr and "hammer" in first.stderr
        second = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["extra"]["unchanged"] == 100
        assert anyio.run(_count, b, "tools-copy") == 100
        _no_keys(first.stdout, first.stderr, second.stdout, second.stderr,
                 files=[tmp_path / "m.sqlite", tmp_path / "m.report.json"])

        missing = subprocess.run(cvbulk_argv("migrate", "--from-project", "tools", "--to-project", "absent",
                                             "--tier", "unlimited", "--state", str(tmp_path / "x.sqlite")),
                                 env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert missing.returncode == 3 and "--create" in missing.stderr
        env["VISION_TARGET_TRAINING_KEY"] = "not-the-target-key-42"
        wrong = subprocess.run(cvbulk_argv("migrate", "--from-project", "tools", "--to-project", "tools-copy",
                                           "--tier", "unlimited", "--state", str(tmp_path / "w.sqlite")),
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 3, wrong.stderr
        assert "not-the-target-key-42" not in wrong.stderr + wrong.stdout


def test_migrate_killed_with_sigkill_then_resumed_without_duplicates(tmp_path):
    a, b = emulators(tmp_path)
    with a, b:
        anyio.run(_source_project, a, 320)
        # a slow target (every image costs 10 ms) and one request at a time: the kill lands mid-run
        b.set_latency(Latency(per_image=0.01))
        env = env_for(a, b)
        state = tmp_path / "m.sqlite"
        argv = cvbulk_argv("migrate", "--from-project", "tools", "--to-project", "tools-copy", "--create",
                           "--by", "upload", "--tier", "unlimited", "--max-concurrency", "1",
                           "--state", str(state), "--json")
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_when(proc, lambda: _migrated(state) >= 64, timeout=40, what="64 images migrated")
        done = _migrated(state)
        assert 64 <= done < 320

        b.set_latency(Latency())
        resumed = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        report = json.loads(resumed.stdout)
        assert report["extra"]["unchanged"] == done
        assert report["extra"]["comparison"]["equal"], report["extra"]["comparison"]
        assert report["extra"]["comparison"]["images"] == {"source": 320, "target": 320}
        assert report["extra"]["state_counts"] == {"uploaded": 320}
        _no_keys(resumed.stdout, resumed.stderr, files=[state])
