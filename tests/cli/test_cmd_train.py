"""`cvbulk train` against the threaded emulator: refusals in the service's words, --wait, performance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from cvbulk.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples" / "ImageClassification" / "Images"
from ._support import VARS, assert_one_line_error, cli, emulator, env  # noqa: F401 (fixtures)


def make_project(capsys, name: str, *tags: str) -> str:
    code, out, err = cli(capsys, "projects", "create", name, "--json")
    assert code == 0, err
    if tags:
        assert cli(capsys, "tags", "create", name, *tags)[0] == 0
    return json.loads(out)["id"]


def add_images(emulator, project_id: str, per_tag: int = 10) -> None:
    """Tagged sample images, sent with the client itself (upload is another command's business)."""
    from cvbulk.client import TrainingClient

    async def send() -> None:
        async with TrainingClient(emulator.endpoint, emulator.training_key) as client:
            tags = {t.name: t for t in await client.get_tags(project_id)}
            for name, tag in tags.items():
                files = sorted((SAMPLES / name).glob("*.jpg"))[:per_tag]
                images = [(f.name, f.read_bytes()) for f in files]
                summary = await client.create_images_from_data(project_id, images, tag_ids=[tag.id])
                assert summary.is_batch_successful

    anyio.run(send)


def test_training_without_images_is_refused_in_the_service_words(env, capsys):
    make_project(capsys, "empty", "Hemlock", "Japanese_Cherry")
    code, out, err = cli(capsys, "train", "--project", "empty", "--wait")
    assert code == 1
    assert_one_line_error(err)
    assert "training not started" in err and "BadRequest" in err
    assert "upload images first (cvbulk upload ROOT --project 'empty')" in err


def test_wait_prints_performance_then_nothing_changed(env, capsys):
    project_id = make_project(capsys, "trees", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id)

    code, out, err = cli(capsys, "train", "--project", "trees", "--wait", "--poll-interval", "0.5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("trained project 'trees'")
    assert lines[1].split() == ["TAG", "PRECISION", "RECALL", "AP"]
    assert any(line.startswith("Hemlock") and "%" in line for line in lines)
    assert "Completed" in err  # plain status lines off a terminal

    # Nothing changed since: the service says so, exit 1.
    code, _, err = cli(capsys, "train", "--project", project_id)
    assert code == 1
    assert_one_line_error(err)
    assert "BadRequestTrainingNotNeeded" in err

    # --force trains again; --json gives the iteration and its performance.
    code, out, err = cli(capsys, "train", "--project", "trees", "--force", "--wait", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["iteration"]["status"] == "Completed"
    per_tag = {t["name"]: t for t in result["performance"]["perTagPerformance"]}
    assert set(per_tag) == {"Hemlock", "Japanese_Cherry"}
    assert all(0.0 <= t["precision"] <= 1.0 for t in per_tag.values())


def test_start_without_wait_and_selected_tags(env, capsys):
    project_id = make_project(capsys, "selected", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id, per_tag=5)
    code, out, err = cli(capsys, "train", "--project", "selected", "--selected-tags", "Hemlock", "Japanese_Cherry", "--json")
    assert code == 0, err
    iteration = json.loads(out)["iteration"]
    assert iteration["id"] and iteration["status"]


def test_wait_timeout_says_training_goes_on(env, capsys):
    project_id = make_project(capsys, "slowpoke", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id, per_tag=5)
    # The service answers TrainProject with status Training; a timeout shorter than the first
    # pause between polls ends the wait there.
    code, _, err = cli(capsys, "train", "--project", "slowpoke", "--wait", "--timeout", "0.001")
    assert code == 1
    assert err.splitlines()[-1].startswith("cvbulk: error: training still Training after 0.001 s")
    assert "Traceback" not in err


def test_wait_follows_a_training_already_under_way(env, capsys):
    project_id = make_project(capsys, "twice", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id, per_tag=5)
    code, out, err = cli(capsys, "train", "--project", "twice", "--json")
    assert code == 0, err
    started = json.loads(out)["iteration"]["id"]
    # Either the first training is still running (the wait follows it) or it has finished (nothing
    # changed since): both are the service's state, not a race in the command.
    code, out, err = cli(capsys, "train", "--project", "twice", "--wait", "--json")
    if code == 0:
        assert json.loads(out)["iteration"]["id"] == started
        assert "already in progress" in err
    else:
        assert code == 1 and "BadRequestTrainingNotNeeded" in err


def test_unknown_selected_tag_is_a_usage_error(env, capsys):
    make_project(capsys, "tagless", "Hemlock")
    code, _, err = cli(capsys, "train", "--project", "tagless", "--selected-tags", "Oak")
    assert code == 2
    assert_one_line_error(err)
    assert "'Oak'" in err


def test_unknown_project_is_fatal(env, capsys):
    code, _, err = cli(capsys, "train", "--project", "no-such-project")
    assert code == 3
    assert_one_line_error(err)


async def test_spinner_redraws_in_place_on_a_terminal():
    import io

    from cvbulk.cli._spinner import Spinner

    stream = io.StringIO()
    async with Spinner("training", stream=stream, tty=True) as spinner:
        spinner.update("Training")
        spinner.update("Completed")
    text = stream.getvalue()
    assert "\n" not in text  # one line, redrawn with \r
    assert "training: Training" in text and "training: Completed" in text
    assert text.endswith("\r")  # and cleared at the end


async def test_spinner_prints_plain_lines_on_change_elsewhere():
    import io

    from cvbulk.cli._spinner import Spinner

    stream = io.StringIO()
    async with Spinner("training", stream=stream, tty=False, heartbeat=3600) as spinner:
        for status in ("Training", "Training", "Training", "Completed"):
            spinner.update(status)
    assert [line.split(" (")[0] for line in stream.getvalue().splitlines()] == [
        "training: Training",
        "training: Completed",
    ]


async def test_spinner_lets_the_body_error_through_unwrapped():
    import io

    from cvbulk.cli._spinner import Spinner

    with pytest.raises(KeyError):
        async with Spinner("training", stream=io.StringIO(), tty=True):
            raise KeyError("boom")


def test_too_few_images_per_tag_names_the_tags(env, capsys):
    project_id = make_project(capsys, "sparse", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id, per_tag=2)
    code, _, err = cli(capsys, "train", "--project", "sparse")
    assert code == 1
    assert_one_line_error(err)
    assert "images per tag: Hemlock 2, Japanese_Cherry 2" in err and "at least 5" in err


def test_wait_says_it_fetches_the_performance(env, capsys):
    project_id = make_project(capsys, "phases", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id, per_tag=5)
    code, _, err = cli(capsys, "train", "--project", "phases", "--wait", "--progress", "plain")
    assert code == 0, err
    assert "fetching training performance" in err
    code, _, err = cli(capsys, "train", "--project", "phases", "--wait", "--force", "--quiet")
    assert code == 0, err
    assert err == ""


def test_a_prediction_key_given_as_the_training_key_is_named(env, capsys, monkeypatch):
    monkeypatch.setenv("VISION_TRAINING_KEY", env.prediction_key)
    code, _, err = cli(capsys, "train", "--project", "whatever")
    assert code == 3
    assert_one_line_error(err)
    assert "this looks like a prediction key; VISION_TRAINING_KEY (or --key) must be the training resource's key" in err
    assert env.prediction_key not in err


def test_a_wrong_training_key_is_not_called_a_prediction_key(env, capsys, monkeypatch):
    monkeypatch.setenv("VISION_TRAINING_KEY", "not-a-key-at-all")
    code, _, err = cli(capsys, "train", "--project", "whatever")
    assert code == 3
    assert_one_line_error(err)
    assert "refused the training key" in err and "looks like" not in err
