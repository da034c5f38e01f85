"""`cvbulk demo` (both quickstarts) end to end in a temporary folder, on the embedded emulator."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cvbulk.cli import main

VARS = (
    "VISION_TRAINING_ENDPOINT",
    "VISION_TRAINING_KEY",
    "VISION_PREDICTION_ENDPOINT",
    "VISION_PREDICTION_KEY",
    "VISION_PREDICTION_RESOURCE_ID",
)


@pytest.fixture(autouse=True)
def no_vision_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # anything written relative to the current folder lands here


def emulator_keys() -> tuple[str, str]:
    from cvbulk.emulator import DEFAULT_PREDICTION_KEY, DEFAULT_TRAINING_KEY

    return DEFAULT_TRAINING_KEY, DEFAULT_PREDICTION_KEY


def only_csv(workdir: Path) -> Path:
    files = list(workdir.glob("*/predictions.csv"))
    assert len(files) == 1, files
    return files[0]


@pytest.mark.parametrize(
    ("flags", "expected", "keep_data"),
    [((), "Hemlock", True), (("--detection",), "fork", False)],
    ids=["classification", "detection"],
)
def test_demo_runs_the_quickstart(capsys, tmp_path, flags, expected, keep_data):
    workdir = tmp_path / "out"
    data = tmp_path / "emulator-data"
    argv = ["demo", "--workdir", str(workdir), *flags]
    if keep_data:
        argv += ["--data", str(data)]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]

    # Each step is shown as the cvbulk command line that does it, in the quickstart's order.
    steps = ["projects create", "tags create", "upload", "train", "publish", "predict"]
    shown = [line[len("$ cvbulk "):] for line in out.splitlines() if line.startswith("$ cvbulk ")]
    assert [next((s for s in steps if line.startswith(s)), line) for line in shown] == steps
    assert "VISION_TRAINING_KEY" in out
    for key in emulator_keys():
        assert key not in out and key not in err

    with only_csv(workdir).open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    assert expected in text
    assert "test_image.jpg" in text
    assert list(csv.reader(text.splitlines()))  # a real CSV
    assert f"as {expected}" in out  # the verdict line
    if keep_data:
        assert any(data.iterdir()), "the emulator's store stays in --data"
    else:
        assert not data.exists()


def test_missing_samples_is_a_usage_error(capsys, tmp_path):
    code = main(["demo", "--workdir", str(tmp_path / "out"), "--samples", str(tmp_path / "nowhere")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("cvbulk: error: sample images not found")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_real_endpoint_needs_its_settings(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "https://example.invalid")
    monkeypatch.setenv("VISION_TRAINING_KEY", "k" * 32)
    code = main(["demo", "--workdir", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2
    assert "VISION_PREDICTION_KEY" in err
    assert err.count("\n") == 1 and "k" * 32 not in err


def test_demo_against_a_given_endpoint_with_cleanup(capsys, tmp_path, monkeypatch):
    """The Azure path: no embedded emulator, the VISION_* settings as given; --cleanup removes the project."""
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "service")) as service:
        monkeypatch.setenv("VISION_TRAINING_ENDPOINT", service.endpoint)
        monkeypatch.setenv("VISION_TRAINING_KEY", service.training_key)
        monkeypatch.setenv("VISION_PREDICTION_KEY", service.prediction_key)
        monkeypatch.setenv("VISION_PREDICTION_RESOURCE_ID", service.prediction_resource_id)
        code = main(["demo", "--workdir", str(tmp_path / "out"), "--cleanup"])
        out, err = capsys.readouterr()
        assert code == 0, err[-2000:]
        assert f"service: {service.endpoint} (given by" in out
        assert "$ cvbulk unpublish" in out and "$ cvbulk projects delete" in out
        assert service.training_key not in out + err and service.prediction_key not in out + err

        assert main(["projects", "list", "--json"]) == 0
        assert capsys.readouterr().out.strip() == "[]"
    assert "Hemlock" in only_csv(tmp_path / "out").read_text(encoding="utf-8")
