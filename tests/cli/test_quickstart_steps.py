"""The quickstart one command at a time, each in its own process, against a separately started
`cvbulk emulator` (what README's "First five minutes" tells a newcomer to type)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "samples"
IMAGES = SAMPLES / "ImageClassification" / "Images"
LISTENING = re.compile(
    r"^cvbulk emulator listening on (?P<endpoint>http://127\.0\.0\.1:\d+)\s+training-key=(?P<training>\S+)"
    r"\s+prediction-key=(?P<prediction>\S+)\s+prediction-resource-id=(?P<resource>\S+)\s*$"
)
STEP_TIMEOUT = 60


def _read_first_line(process: subprocess.Popen[str], timeout: float) -> str:
    # readline() blocks; a reader thread keeps the wait bounded if the emulator never prints.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        process.kill()
        raise AssertionError(f"`cvbulk emulator` printed nothing in {timeout} s")
    return lines[0]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    data = tmp_path_factory.mktemp("emulator-data")
    process = subprocess.Popen(
        [sys.executable, "-m", "cvbulk", "emulator", "--port", "0", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = _read_first_line(process, 30)
        match = LISTENING.match(line)
        assert match, f"unexpected first line: {line!r}"
        yield match.groupdict()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def shell_env(emulator: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_")}
    env.update(
        VISION_TRAINING_ENDPOINT=emulator["endpoint"],
        VISION_TRAINING_KEY=emulator["training"],
        VISION_PREDICTION_ENDPOINT=emulator["endpoint"],
        VISION_PREDICTION_KEY=emulator["prediction"],
        VISION_PREDICTION_RESOURCE_ID=emulator["resource"],
    )
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quickstart")  # the current folder of every step


def cvbulk(env: dict[str, str], cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cvbulk", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    for key in ("VISION_TRAINING_KEY", "VISION_PREDICTION_KEY"):
        assert env[key] not in result.stdout + result.stderr, "a key was printed"
    return result


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# The quickstart's order; each test is one step and leaves the service as the next step expects.


def test_1_create_project(shell_env, workdir):
    project = json.loads(ok(cvbulk(shell_env, workdir, "projects", "create", "trees", "--json")))
    assert project["name"] == "trees"
    assert "trees" in ok(cvbulk(shell_env, workdir, "projects", "list"))


def test_2_add_tags(shell_env, workdir):
    ok(cvbulk(shell_env, workdir, "tags", "create", "trees", "Hemlock", "Japanese_Cherry"))
    tags = json.loads(ok(cvbulk(shell_env, workdir, "tags", "list", "trees", "--json")))
    assert sorted(t["name"] for t in tags) == ["Hemlock", "Japanese_Cherry"]


def test_3_upload_and_tag_images(shell_env, workdir):
    ok(cvbulk(shell_env, workdir, "upload", str(IMAGES), "--project", "trees", "--exclude", "Test"))
    tags = json.loads(ok(cvbulk(shell_env, workdir, "tags", "list", "trees", "--json")))
    assert {t["name"]: t["imageCount"] for t in tags} == {"Hemlock": 10, "Japanese_Cherry": 10}


def test_4_train(shell_env, workdir):
    out = ok(cvbulk(shell_env, workdir, "train", "--project", "trees", "--wait"))
    assert "Hemlock" in out and "PRECISION" in out


def test_5_publish(shell_env, workdir):
    out = ok(cvbulk(shell_env, workdir, "publish", "--project", "trees", "--name", "classifyModel"))
    assert "classifyModel" in out


def test_6_test_the_prediction_endpoint(shell_env, workdir):
    image = str(IMAGES / "Test" / "test_image.jpg")
    result = json.loads(
        ok(cvbulk(shell_env, workdir, "classify", image, "--project", "trees", "--published-name", "classifyModel", "--json"))
    )
    assert result["predictions"][0]["tagName"] == "Hemlock"

    output = workdir / "predictions.csv"
    ok(
        cvbulk(
            shell_env, workdir, "predict", str(IMAGES / "Test"), "--project", "trees",
            "--published-name", "classifyModel", "--output", str(output),
        )
    )
    with output.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["path"], r["top_tag"]) for r in rows] == [("test_image.jpg", "Hemlock")]


def test_7_clean_up(shell_env, workdir):
    ok(cvbulk(shell_env, workdir, "unpublish", "--project", "trees"))
    ok(cvbulk(shell_env, workdir, "projects", "delete", "trees", "--yes"))
    assert "trees" not in ok(cvbulk(shell_env, workdir, "projects", "list", "--json"))
