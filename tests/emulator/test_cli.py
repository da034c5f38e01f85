"""`python -m cvbulk emulator`: one start-up line, serves, persists, stops cleanly on SIGTERM / SIGINT."""

from __future__ import annotations

import json
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
ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> tuple[subprocess.Popen, re.Match]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvbulk", "emulator", "--port", "0", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
    data = tmp_path / "data"
    proc, m = _start("--data", str(data), "--training-key", "k-train", "--tier", "S0")
    try:
        endpoint, key = m.group(1), m.group(3)
        assert key == "k-train"
        _call("POST", f"{endpoint}/customvision/v3.3/Training/projects?name=kept", key)
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, m = _start("--data", str(data), "--training-key", "k-train")
    try:
        projects = _call("GET", f"{m.group(1)}/customvision/v3.3/training/projects", "k-train")
        assert [p["name"] for p in projects] == ["kept"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
