"""`cvbulk publish` / `cvbulk unpublish` against the threaded emulator."""

from __future__ import annotations

import json

import anyio
import pytest

from ._support import SAMPLES, assert_one_line_error, cli, emulator, set_env, trained_project  # noqa: F401, F811 (fixtures)


@pytest.fixture(scope="module")
def trained(emulator) -> str:
    return anyio.run(trained_project, emulator, "trees")


@pytest.fixture
def env(emulator, monkeypatch: pytest.MonkeyPatch):
    return set_env(monkeypatch, emulator, VISION_PREDICTION_RESOURCE_ID=emulator.prediction_resource_id)




def iterations(capsys, emulator, project_id: str) -> list:
    from cvbulk.client import TrainingClient

    async def fetch():
        async with TrainingClient(emulator.endpoint, emulator.training_key) as client:
            return await client.get_iterations(project_id)

    return anyio.run(fetch)


def test_publish_latest_then_unpublish(env, trained, capsys):
    code, out, err = cli(capsys, "publish", "--project", "trees", "--name", "classifyModel")
    assert code == 0, err
    assert "as 'classifyModel'" in out
    assert [it.publish_name for it in iterations(capsys, env, trained)] == ["classifyModel"]

    code, out, err = cli(capsys, "unpublish", "--project", "trees", "--json")
    assert code == 0, err
    assert json.loads(out)["unpublished"] == "classifyModel"
    assert [it.publish_name for it in iterations(capsys, env, trained)] == [None]

    # Again: nothing published, nothing to do.
    code, out, err = cli(capsys, "unpublish", "--project", "trees")
    assert code == 0, err
    assert "nothing to do" in out


def test_publish_by_iteration_id_and_unpublish_by_name(env, trained, capsys):
    iteration = iterations(capsys, env, trained)[0]
    code, out, err = cli(
        capsys, "publish", "--project", trained, "--name", "byId", "--iteration", iteration.id, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["iteration"]["publishName"] == "byId"
    code, out, err = cli(capsys, "unpublish", "--project", "trees", "--name", "byId")
    assert code == 0, err
    assert "unpublished 'byId'" in out


def test_unpublish_unknown_name_is_fatal(env, trained, capsys):
    code, _, err = cli(capsys, "unpublish", "--project", "trees", "--name", "neverPublished")
    assert code == 3
    assert_one_line_error(err)


def test_publish_needs_a_prediction_resource_id(env, trained, capsys, monkeypatch):
    monkeypatch.delenv("VISION_PREDICTION_RESOURCE_ID")
    code, _, err = cli(capsys, "publish", "--project", "trees", "--name", "x")
    assert code == 2
    assert_one_line_error(err)
    assert "VISION_PREDICTION_RESOURCE_ID" in err


def test_publish_untrained_project_is_fatal(env, capsys):
    anyio.run(lambda: trained_project(env, "untrained", train=False))
    code, _, err = cli(capsys, "publish", "--project", "untrained", "--name", "x")
    assert code == 3
    assert_one_line_error(err)
    assert "cvbulk train" in err


def test_unknown_iteration_is_fatal(env, trained, capsys):
    code, _, err = cli(capsys, "publish", "--project", "trees", "--name", "x", "--iteration", "Iteration 99")
    assert code == 3
    assert_one_line_error(err)


def _classify(capsys, *extra: str) -> tuple[int, str, str]:
    image = str(SAMPLES / "Test" / "test_image.jpg")
    return cli(capsys, "classify", image, "--project", "trees", *extra)


def test_classify_with_an_unknown_published_name_lists_the_names(env, capsys, trained, monkeypatch):
    monkeypatch.setenv("VISION_PREDICTION_KEY", env.prediction_key)
    assert cli(capsys, "publish", "--project", "trees", "--name", "treesModel", "--overwrite")[0] == 0
    code, _, err = _classify(capsys, "--published-name", "nope")
    assert code == 3
    assert_one_line_error(err)
    assert "nothing published as 'nope'" in err and "'treesModel'" in err

    code, _, err = _classify(capsys, "--published-name", "treesModel", "--detect")
    assert code == 2
    assert_one_line_error(err)
    assert "drop --detect" in err


def test_a_training_key_given_as_the_prediction_key_is_named(env, capsys, trained, monkeypatch):
    monkeypatch.setenv("VISION_PREDICTION_KEY", env.training_key)
    code, _, err = _classify(capsys, "--published-name", "whatever")
    assert code == 3
    assert_one_line_error(err)
    assert "this looks like a training key; VISION_PREDICTION_KEY" in err
    assert env.training_key not in err
