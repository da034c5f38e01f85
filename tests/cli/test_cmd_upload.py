"""``cvbulk upload`` as a user runs it: a real process against the emulator (its own thread)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from cvbulk.client import Pacer, TrainingClient
from tests.corpus import make_tree

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "samples"


def env_for(emulator) -> dict[str, str]:
    env = dict(os.environ)
    env["VISION_TRAINING_ENDPOINT"] = emulator.endpoint
    env["VISION_TRAINING_KEY"] = emulator.training_key
    env["PYTHONPATH"] = str(REPO)
    env.pop("CVBULK_TIER", None)
    return env


def cvbulk(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cvbulk", *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )


def test_upload_samples_like_the_quickstart_then_nothing_to_do(tmp_path, emulator):
    env = env_for(emulator)
    images = SAMPLES / "ImageClassification" / "Images"
    argv = ("upload", str(images), "--project", "trees", "--create", "--exclude", "Test",
            "--tier", "unlimited", "--json")
    first = cvbulk(*argv, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["counts"] == {"uploaded": 20, "skipped": 1}  # Test/test_image.jpg, excluded
    assert "Traceback" not in first.stderr
    second = cvbulk(*argv, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["counts"] == {} and again["extra"]["unchanged"] == 21
    # state and report in ./.cvbulk, and the key in no artefact of the run
    files = list((tmp_path / ".cvbulk").iterdir())
    assert any(f.suffix == ".sqlite" for f in files) and any(f.name.endswith(".report.json") for f in files)
    key = emulator.training_key.encode()
    for f in files:
        assert key not in f.read_bytes()
    for out in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert emulator.training_key not in out


def test_dry_run_prints_what_would_be_sent(tmp_path, emulator):
    env = env_for(emulator)
    images = SAMPLES / "ImageClassification" / "Images"
    done = cvbulk("upload", str(images), "--project", "trees", "--create", "--dry-run", "--tier", "unlimited",
                  env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "would create project 'trees'" in done.stdout
    for line in ("Hemlock", "Japanese_Cherry"):
        assert line in done.stdout
    # without --exclude the Test folder is a tag too: the dry run shows it before anything is sent
    assert "Test" in done.stdout
    assert not (tmp_path / ".cvbulk").exists()


def test_bad_configuration_is_one_line_and_an_exit_status(tmp_path, emulator):
    env = env_for(emulator)
    root = tmp_path / "tree"
    make_tree(root, {"a": 1})
    missing = cvbulk("upload", str(root), "--project", "nope", env=env, cwd=tmp_path)
    assert missing.returncode == 3
    assert "nope" in missing.stderr and "--create" in missing.stderr and "Traceback" not in missing.stderr
    bad_key = dict(env, VISION_TRAINING_KEY="0" * 32)
    denied = cvbulk("upload", str(root), "--project", "x", "--create", env=bad_key, cwd=tmp_path)
    assert denied.returncode == 3 and "Traceback" not in denied.stderr
    assert "0" * 32 not in denied.stderr
    nolabels = cvbulk("upload", str(root), "--project", "x", "--labels", "nope.json", env=env, cwd=tmp_path)
    assert nolabels.returncode == 2 and "nope.json" in nolabels.stderr


async def test_killed_with_sigkill_twice_then_resumed_ends_with_each_image_once(tmp_path, emulator):
    root = tmp_path / "tree"
    expected = make_tree(root, {"a": 150, "b": 90})
    env = env_for(emulator)
    # Small batches at 25 requests/s: the run takes seconds, so the kills land in the middle.
    argv = [sys.executable, "-m", "cvbulk", "upload", str(root), "--project", "killme", "--create",
            "--tps", "25", "--tier", "unlimited", "--batch-bytes", "12000", "--max-concurrency", "4"]
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as client:

        async def project_id() -> str | None:
            return next((p.id for p in await client.get_projects() if p.name == "killme"), None)

        for kill_after in (20, 120):
            with anyio.fail_after(60):
                async with await anyio.open_process(argv, env=env, cwd=tmp_path) as proc:
                    while True:  # poll the service until enough images are in, then kill -9
                        pid = await project_id()
                        if pid and await client.get_image_count(pid) >= kill_after:
                            break
                        assert proc.returncode is None, "the upload ended before it could be killed"
                        await anyio.sleep(0.02)
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
            assert proc.returncode == -signal.SIGKILL
            assert await client.get_image_count(pid) < len(expected)

        with anyio.fail_after(60):
            done = await anyio.run_process(argv + ["--json"], env=env, cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stderr.decode()
        report = json.loads(done.stdout)
        assert "duplicate" not in report["counts"] and "error" not in report["counts"]
        assert await client.get_image_count(pid) == len(expected)
        tags = {t.name: t.image_count for t in await client.get_tags(pid)}
        assert tags == {"a": 150, "b": 90}
        # every image once: as many distinct images as files
        ids = {img.id async for img in client.iter_images(pid)}
        assert len(ids) == len(expected)


def test_a_damaged_state_file_is_one_clear_line_and_exit_2(tmp_path, emulator):
    env = env_for(emulator)
    root = tmp_path / "tree"
    make_tree(root, {"cat": 2})
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"not a database at all " * 200)
    done = cvbulk("upload", str(root), "--project", "damaged", "--create", "--tier", "unlimited",
                  "--state", str(state), env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("cvbulk: error:") and "state file" in lines[-1] and "--state" in lines[-1]
    assert "unexpected" not in done.stderr


def test_tier_and_progress_flags(tmp_path, emulator):
    env = env_for(emulator)
    root = tmp_path / "tree"
    make_tree(root, {"cat": 2})
    done = cvbulk("upload", str(root), "--project", "lower", "--create", "--tier", "unlimited".upper(),
                  env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = cvbulk("upload", str(root), "--project", "lower", "--tier", "s0", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_hidden_files_are_skipped_with_the_flag_they_name_and_taken_with_it(tmp_path, emulator):
    import shutil

    tree = tmp_path / "tree" / "Hemlock"
    tree.mkdir(parents=True)
    source = SAMPLES / "ImageClassification" / "Images" / "Hemlock" / "hemlock_1.jpg"
    shutil.copy(source, tree / "seen.jpg")
    shutil.copy(SAMPLES / "ImageClassification" / "Images" / "Hemlock" / "hemlock_2.jpg", tree / ".hidden.jpg")
    env = env_for(emulator)
    base = ("upload", str(tmp_path / "tree"), "--project", "hidden", "--create", "--json")
    done = cvbulk(*base, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"] == {"uploaded": 1, "skipped": 1}
    assert any("--include-hidden" in s["reason"] for s in report["extra"]["skipped"])  # the flag it names exists
    done = cvbulk(*base, "--include-hidden", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"uploaded": 1}


def test_tag_folders_that_differ_only_in_case_are_one_tag_created_once(tmp_path, emulator):
    # The service compares tag names without case: "Hemlock" and "hemlock" are one tag, made once and said once.
    root = tmp_path / "tree"
    make_tree(root, {"Hemlock": 2, "hemlock": 2, "Cherry": 1}, seed=11)
    done = cvbulk("upload", str(root), "--project", "cased", "--create", "--tier", "unlimited", "--json",
                  env=env_for(emulator), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"] == {"uploaded": 5}
    created = report["extra"]["tags_created"]
    assert sorted(n.lower() for n in created) == ["cherry", "hemlock"], created

    async def tags() -> dict[str, int]:
        async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
            project = next(p for p in await c.get_projects() if p.name == "cased")
            return {t.name.lower(): t.image_count for t in await c.get_tags(project.id)}

    assert anyio.run(tags) == {"hemlock": 4, "cherry": 1}
