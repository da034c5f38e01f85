"""`python -m cvbulk emulator`: one start-up line, serves, persists, stops cleanly on SIGTERM / SIGINT."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

LINE = re.compile(
    r"^cvbulk emulator listening on (http://127\.0\.0\.1:(\d+))  training-key=(\S+)  "
    r"prediction-key=(\S+)  prediction-resource-id=(\S+)$"
)
STORAGE = re.compile(r"^# image URIs, export tokens and model links: (http://127\.0\.0\.1:\d+) \(signed, no key\)$")
ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, re.Match]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvbulk", "emulator", "--port", "0", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline().rstrip("\n")
    match = LINE.match(line)
    if match is None:
        proc.kill()
        raise AssertionError(f"unexpected start-up line: {line!r} {proc.stderr.read()[:500]}")
    return proc, match


def _call(method: str, url: str, key: str) -> object:
    request = urllib.request.Request(url, method=method, headers={"Training-Key": key})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serves_persists_and_stops_cleanly(tmp_path, stop):
    from tests.reliability.conftest import restartable_port

    data = tmp_path / "data"
    port = restartable_port()  # below the ephemeral range: still free at the restart
    proc, m = _start("--data", str(data), "--training-key", "k-train", "--tier", "S0", "--storage-port", str(port))
    try:
        endpoint, key = m.group(1), m.group(3)
        assert key == "k-train"
        _call("POST", f"{endpoint}/customvision/v3.3/Training/projects?name=kept", key)
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0
        # then the tier it plays, where its image URIs are, and ready-to-paste exports, and nothing else
        rest = proc.stdout.read().splitlines()
        storage = STORAGE.match(rest[1])
        assert storage is not None and storage.group(1) == f"http://127.0.0.1:{port}" != endpoint, rest[1]
        assert rest == [
            "# tier S0: latency 0.1 s per call + 0.05 s per image", rest[1],
            f"export VISION_TRAINING_ENDPOINT={endpoint}", "export VISION_TRAINING_KEY=k-train",
            f"export VISION_PREDICTION_ENDPOINT={endpoint}", f"export VISION_PREDICTION_KEY={m.group(4)}",
            f"export VISION_PREDICTION_RESOURCE_ID={m.group(5)}",
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, m = _start("--data", str(data), "--training-key", "k-train")
    try:
        projects = _call("GET", f"{m.group(1)}/customvision/v3.3/training/projects", "k-train")
        assert [p["name"] for p in projects] == ["kept"]
        # image URIs are served where they were before the restart: the data folder's port, not a new one
        proc.stdout.readline()  # the tier
        again = STORAGE.match(proc.stdout.readline().rstrip("\n"))
        assert again is not None and again.group(1) == storage.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_keys_from_the_environment_stay_out_of_the_command_line(tmp_path):
    env = {**os.environ, "CVBULK_EMULATOR_TRAINING_KEY": "env-train-key",
           "CVBULK_EMULATOR_PREDICTION_KEY": "env-predict-key"}
    proc, m = _start("--latency", "0", "--tier", "F0", env=env)
    try:
        assert m.group(3) == "env-train-key" and m.group(4) == "env-predict-key"
        assert proc.stdout.readline() == "# tier F0: latency 0 s per call + 0 s per image\n"
        assert "env-train-key" not in " ".join(proc.args)
        assert _call("GET", f"{m.group(1)}/customvision/v3.3/training/projects", "env-train-key") == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_help_documents_the_key_variables_and_limits():
    done = subprocess.run([sys.executable, "-m", "cvbulk", "emulator", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert "CVBULK_EMULATOR_TRAINING_KEY" in done.stdout and "CVBULK_EMULATOR_PREDICTION_KEY" in done.stdout
    assert "--url-ttl" in done.stdout and "--header-timeout" in done.stdout and "400 MB" in done.stdout
