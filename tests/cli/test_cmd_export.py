"""``cvbulk export`` as a user runs it: a real process against the emulator (its own thread)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cvbulk.client import Pacer, TrainingClient
from cvbulk.emulator import EmulatorConfig, EmulatorThread

REPO = Path(__file__).resolve().parents[2]
CLASSIFICATION = REPO / "examples" / "samples" / "ImageClassification" / "Images"
KEY = "export-test-secret-key-0123456789"

pytestmark = pytest.mark.timeout(90)


def cvbulk(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvbulk", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def env_for(emulator) -> dict[str, str]:
    env = dict(os.environ)
    env.update(VISION_TRAINING_ENDPOINT=emulator.endpoint, VISION_TRAINING_KEY=emulator.training_key,
               PYTHONPATH=str(REPO))
    env.pop("CVBULK_TIER", None)
    return env


async def _samples_project(emulator) -> None:
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        project = await c.create_project("trees")
        for folder in ("Hemlock", "Japanese_Cherry"):
            tag = await c.create_tag(project.id, folder)
            files = sorted((CLASSIFICATION / folder).iterdir())
            await c.create_images_from_data(project.id, [(f.name, f.read_bytes()) for f in files], tag_ids=[tag.id])


def test_export_folders_then_upload_back(tmp_path):
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        anyio.run(_samples_project, emulator)
        env = env_for(emulator)
        out = tmp_path / "out"
        first = cvbulk("export", str(out), "--project", "trees", "--tier", "unlimited", "--json", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["counts"] == {"exported": 20}
        assert "Traceback" not in first.stderr and "cvbulk upload" in first.stderr
        on_disk = {hashlib.sha256(f.read_bytes()).hexdigest(): f.parent.name for f in out.glob("*/*.jpg")}
        assert on_disk == {
            hashlib.sha256(f.read_bytes()).hexdigest(): d
            for d in ("Hemlock", "Japanese_Cherry") for f in (CLASSIFICATION / d).iterdir()
        }
        again = cvbulk("export", str(out), "--project", "trees", "--tier", "unlimited", "--json", env=env, cwd=tmp_path)
        assert again.returncode == 0 and json.loads(again.stdout)["extra"]["unchanged"] == 20

        back = cvbulk("upload", str(out), "--project", "trees-back", "--create", "--tier", "unlimited", "--json",
                      env=env, cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        counts = json.loads(back.stdout)["counts"]
        assert counts["uploaded"] == 20  # model.json, labels.csv, cvbulk-folders.json: skipped, not images

        # the key is in no output, state file or report
        for text in (first.stdout, first.stderr, again.stdout, again.stderr):
            assert KEY not in text
        for f in (out / ".cvbulk").iterdir():
            assert KEY.encode() not in f.read_bytes()


def test_export_usage_errors(tmp_path):
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        env = env_for(emulator)
        missing = cvbulk("export", str(tmp_path / "o"), "--project", "nope", "--tier", "unlimited", env=env, cwd=tmp_path)
        assert missing.returncode == 3 and "nope" in missing.stderr
        bad = cvbulk("export", str(tmp_path / "o"), "--project", "x", "--format", "xml", env=env, cwd=tmp_path)
        assert bad.returncode == 2
        both = cvbulk("export", str(tmp_path / "o"), "--to", "az://c/p", "--project", "x", env=env, cwd=tmp_path)
        assert both.returncode == 2 and "not both" in both.stderr
        neither = cvbulk("export", "--project", "x", env=env, cwd=tmp_path)
        assert neither.returncode == 2 and "--to" in neither.stderr
        split = cvbulk("export", str(tmp_path / "o"), "--project", "x", "--validation-split", "1.5", env=env,
                       cwd=tmp_path)
        assert split.returncode == 2 and "--validation-split" in split.stderr
        container = cvbulk("export", "--to", "az://Bad_Name/x", "--project", "x", env=env, cwd=tmp_path)
        assert container.returncode == 2 and "bad container name" in container.stderr
        env["VISION_TRAINING_KEY"] = "wrong-key-for-this-emulator"
        wrong = cvbulk("export", str(tmp_path / "o"), "--project", "x", "--tier", "unlimited", env=env, cwd=tmp_path)
        assert wrong.returncode == 3 and "wrong-key" not in wrong.stderr
