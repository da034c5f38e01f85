"""`cvbulk quicktest` (training key) and `cvbulk classify` (prediction key) against the threaded emulator."""

from __future__ import annotations

import json

import anyio
import pytest

from ._support import SAMPLES, assert_one_line_error, cli, emulator, set_env, trained_project  # noqa: F401, F811 (fixtures)

TEST_IMAGE = SAMPLES / "Test" / "test_image.jpg"


@pytest.fixture(scope="module")
def published(emulator) -> str:
    """A project trained on the Hemlock / Japanese_Cherry samples and published as classifyModel."""
    return anyio.run(lambda: trained_project(emulator, "trees", publish_as="classifyModel"))


@pytest.fixture
def env(emulator, monkeypatch: pytest.MonkeyPatch):
    return set_env(monkeypatch, emulator, VISION_PREDICTION_KEY=emulator.prediction_key)




def test_quicktest_table_says_hemlock_first(env, published, capsys):
    code, out, err = cli(capsys, "quicktest", str(TEST_IMAGE), "--project", "trees")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["TAG", "PROBABILITY"]
    assert lines[3].split()[0] == "Hemlock"


def test_quicktest_json(env, published, capsys):
    code, out, err = cli(capsys, "quicktest", str(TEST_IMAGE), "--project", published, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["project"] == published
    names = [p["tagName"] for p in result["predictions"]]
    assert names[0] == "Hemlock" and set(names) == {"Hemlock", "Japanese_Cherry"}


def test_classify_by_project_id_with_the_prediction_key_only(env, published, capsys, monkeypatch):
    monkeypatch.delenv("VISION_TRAINING_KEY")
    code, out, err = cli(
        capsys, "classify", str(TEST_IMAGE), "--project", published, "--published-name", "classifyModel", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["predictions"][0]["tagName"] == "Hemlock"
    probabilities = [p["probability"] for p in result["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_classify_by_name_looks_the_project_up(env, published, capsys):
    code, out, err = cli(
        capsys, "classify", str(TEST_IMAGE), "--project", "trees", "--published-name", "classifyModel"
    )
    assert code == 0, err
    assert out.splitlines()[3].split()[0] == "Hemlock"


def test_classify_by_name_without_training_key_is_a_usage_error(env, published, capsys, monkeypatch):
    monkeypatch.delenv("VISION_TRAINING_KEY")
    code, _, err = cli(
        capsys, "classify", str(TEST_IMAGE), "--project", "trees", "--published-name", "classifyModel"
    )
    assert code == 2
    assert_one_line_error(err)


def test_classify_unknown_published_name_is_fatal(env, published, capsys):
    code, _, err = cli(
        capsys, "classify", str(TEST_IMAGE), "--project", published, "--published-name", "nope"
    )
    assert code == 3
    assert_one_line_error(err)


def test_wrong_prediction_key_is_fatal_and_hidden(env, published, capsys):
    wrong = "fedcba9876543210fedcba9876543210"
    code, out, err = cli(
        capsys, "classify", str(TEST_IMAGE), "--project", published, "--published-name", "classifyModel",
        "--prediction-key", wrong,
    )
    assert code == 3
    assert_one_line_error(err)
    assert wrong not in out + err


def test_missing_image_is_a_usage_error(env, published, capsys, tmp_path):
    code, _, err = cli(capsys, "quicktest", str(tmp_path / "nope.jpg"), "--project", "trees")
    assert code == 2
    assert_one_line_error(err)


def test_not_an_image_is_a_usage_error(env, published, capsys, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    code, _, err = cli(capsys, "quicktest", str(text), "--project", "trees")
    assert code == 2
    assert_one_line_error(err)
