"""`cvbulk emulator` stops promptly on SIGTERM / Ctrl-C while a training (and its evaluation) runs:
the CPU work is in cancellable daemon threads, so a stop never waits for it to finish."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import time
import urllib.request

import pytest

from .bench_iteration_performance import scene
from .test_cli import _start

pytestmark = pytest.mark.timeout(90)

N_IMAGES = 240  # trains (and cross-validates) for well over STOP_WITHIN seconds, even on a quiet machine
STOP_WITHIN = 5.0


def _call(method: str, url: str, key: str, body: object = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Training-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_does_not_wait_for_a_running_training(tmp_path, stop):
    data = tmp_path / "data"
    proc, m = _start("--data", str(data), "--training-key", "k")
    try:
        t = f"{m.group(1)}/customvision/v3.3/training"
        domain = next(d["id"] for d in _call("GET", f"{t}/domains", "k") if d["type"] == "ObjectDetection")
        pid = _call("POST", f"{t}/projects?name=od&domainId={domain}", "k")["id"]
        tags = {name: _call("POST", f"{t}/projects/{pid}/tags?name={name}", "k")["id"] for name in "ab"}
        for start in range(0, N_IMAGES, 64):
            batch = []
            for i in range(start, min(start + 64, N_IMAGES)):
                image, regions = scene(i)
                batch.append({"name": f"{i}.jpg", "contents": base64.b64encode(image).decode(), "regions": [
                    {"tagId": tags[r["tag"]], "left": r["left"], "top": r["top"], "width": r["width"],
                     "height": r["height"]} for r in regions]})
            assert _call("POST", f"{t}/projects/{pid}/images/files", "k", {"images": batch})["isBatchSuccessful"]
        iteration = _call("POST", f"{t}/projects/{pid}/train", "k", {})
        deadline = time.monotonic() + 30
        while iteration["domainId"] is None:  # queued: the trainer starts once the domain shows
            assert time.monotonic() < deadline, iteration
            time.sleep(0.05)
            iteration = _call("GET", f"{t}/projects/{pid}/iterations/{iteration['id']}", "k")
        assert iteration["status"] == "Training"
        proc.send_signal(stop)
        stopped = time.monotonic()
        assert proc.wait(timeout=STOP_WITHIN) == 0
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # stopped mid-training: the iteration is still Training (the next start trains it again)
    db = sqlite3.connect(data / "emulator.sqlite3")
    try:
        status = db.execute("SELECT status FROM iterations WHERE id=?", (iteration["id"],)).fetchone()[0]
    finally:
        db.close()
    assert status == "Training", f"the training finished before the stop ({took:.1f} s): make it longer"
