"""The official JavaScript SDK (@azure/cognitiveservices-customvision-training and -prediction,
from npm) runs Microsoft's classification quickstart, unchanged, against the emulator.

The Node project is tests/emulator/js (its package.json and package-lock.json pin the SDK);
its node_modules are installed there by this test when missing (``npm ci``), never globally."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import SAMPLES

pytestmark = pytest.mark.timeout(300)

JS = Path(__file__).resolve().parent / "js"


def _npm_ci() -> None:
    """Install the pinned SDK into tests/emulator/js/node_modules, once."""
    if (JS / "node_modules" / "@azure" / "cognitiveservices-customvision-training").is_dir():
        return
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"npm ci failed in {JS}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def node() -> str:
    path, npm = shutil.which("node"), shutil.which("npm")
    if path is None or npm is None:
        pytest.skip("node and npm are not installed on this machine: the JavaScript SDK check needs them")
    _npm_ci()
    return path


def test_js_sdk_quickstart_runs_unchanged(node, emulator_thread):
    emu = emulator_thread
    env = {**os.environ, "CV_ENDPOINT": emu.endpoint, "CV_TRAINING_KEY": emu.training_key,
           "CV_PREDICTION_KEY": emu.prediction_key, "CV_PREDICTION_RESOURCE_ID": emu.prediction_resource_id,
           "CV_SAMPLES": str(SAMPLES / "ImageClassification" / "Images"), "CV_POLL_MS": "50"}
    done = subprocess.run([node, "quickstart.js"], cwd=JS, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Training status: Completed" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["uploaded"] == [True] * 20
    assert result["taggedImageCount"] == 20
    assert result["statuses"][0] == "Training" and result["statuses"][-1] == "Completed"
    best = max(result["predictions"], key=lambda p: p["probability"])
    assert best["tagName"] == "Hemlock"
    assert {p["tagName"] for p in result["predictions"]} == {"Hemlock", "Japanese Cherry"}
    assert abs(sum(p["probability"] for p in result["predictions"]) - 1.0) < 1e-6  # multiclass


def test_js_sdk_on_the_operations_added_last(node, emulator_thread):
    """Exports, artifacts (a stream), suggestions (a dictionary answer), proposals, image performances."""
    emu = emulator_thread
    env = {**os.environ, "CV_ENDPOINT": emu.endpoint, "CV_TRAINING_KEY": emu.training_key,
           "CV_SAMPLES": str(SAMPLES / "ImageClassification" / "Images"), "CV_POLL_MS": "50"}
    done = subprocess.run([node, "operations.js"], cwd=JS, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exportStarted"] == "Exporting"
    assert result["export"] == {"status": "Done", "platform": "TensorFlow", "flavor": "TensorFlowLite"}
    assert result["zipMagic"] == "PK" and result["zipBytes"] > 100
    assert result["suggestedTag"] == "Hemlock" and result["suggestionId"] == result["untaggedId"]
    assert result["hemlockCount"] == 1 and result["suggestedIds"] == [result["untaggedId"]]
    assert 1 <= result["proposals"] <= 20
    assert result["performances"] == result["performanceCount"] > 0
