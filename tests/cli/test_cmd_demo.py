"""`cvbulk demo` (both quickstarts) end to end in a temporary folder, on the embedded emulator."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cvbulk.cli import main

from ._support import VARS


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
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")  # never reached
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


def test_a_failing_step_stops_the_demo_with_one_line(capsys, tmp_path, monkeypatch):
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "service")) as service:
        monkeypatch.setenv("VISION_TRAINING_ENDPOINT", service.endpoint)
        monkeypatch.setenv("VISION_TRAINING_KEY", service.training_key)
        monkeypatch.setenv("VISION_PREDICTION_KEY", "not-the-prediction-key-0123456789")
        monkeypatch.setenv("VISION_PREDICTION_RESOURCE_ID", service.prediction_resource_id)
        code = main(["demo", "--workdir", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 3
    assert "[6/6]" in out and "Done in" not in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("cvbulk: error: ")
    assert "Traceback" not in err and "not-the-prediction-key-0123456789" not in out + err


def test_verdict_reads_the_best_row_of_each_image(tmp_path):
    from cvbulk.cli._demo_result import check_predictions

    detection = tmp_path / "detect.csv"
    detection.write_text(
        "path,status,reason,tag,probability,left,top,width,height\n"
        "test_image.jpg,predicted,,scissors,0.40,0.1,0.1,0.5,0.5\n"
        "test_image.jpg,predicted,,fork,0.90,0.1,0.1,0.6,0.6\n",
        encoding="utf-8",
    )
    verdict = check_predictions(detection, expected="fork", detection=True)
    assert verdict.ok and "detected as fork" in verdict.reason
    assert "scissors" in verdict.table  # every row is shown

    classification = tmp_path / "classify.csv"
    classification.write_text(
        "path,status,reason,top_tag,top_probability,Hemlock,Japanese_Cherry\n"
        "test_image.jpg,predicted,,Japanese_Cherry,0.8,0.2,0.8\n",
        encoding="utf-8",
    )
    verdict = check_predictions(classification, expected="Hemlock", detection=False)
    assert not verdict.ok and "came out Japanese_Cherry" in verdict.reason

    assert not check_predictions(tmp_path / "missing.csv", expected="Hemlock", detection=False).ok
