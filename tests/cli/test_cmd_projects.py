"""`cvbulk projects list | create | delete` against the threaded emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cvbulk.cli import main

from ._support import VARS, assert_one_line_error, cli, emulator, env  # noqa: F401 (fixtures)


def domains(capsys) -> list[dict]:
    code, out, err = cli(capsys, "domains", "--json")
    assert code == 0, err
    return json.loads(out)


def test_create_list_delete(env, capsys):
    code, out, err = cli(capsys, "projects", "create", "birds", "--description", "garden birds", "--json")
    assert code == 0, err
    project = json.loads(out)
    assert project["name"] == "birds" and project["description"] == "garden birds"

    code, out, err = cli(capsys, "projects", "list")
    assert code == 0, err
    assert out.splitlines()[0].split()[:2] == ["ID", "NAME"]
    assert project["id"] in out and "birds" in out

    code, out, err = cli(capsys, "projects", "list", "--json")
    assert code == 0, err
    assert project["id"] in {p["id"] for p in json.loads(out)}

    code, out, err = cli(capsys, "projects", "delete", "birds", "--yes")
    assert code == 0, err
    assert project["id"] in out
    code, out, _ = cli(capsys, "projects", "list", "--json")
    assert project["id"] not in {p["id"] for p in json.loads(out)}


def test_create_detection_uses_an_object_detection_domain(env, capsys):
    code, out, err = cli(capsys, "projects", "create", "cutlery", "--detection", "--json")
    assert code == 0, err
    project = json.loads(out)
    by_id = {d["id"]: d for d in domains(capsys)}
    assert by_id[project["settings"]["domainId"]]["type"] == "ObjectDetection"


def test_create_with_domain_name_and_classification_type(env, capsys):
    code, out, err = cli(
        capsys, "projects", "create", "flowers", "--domain", "General",
        "--classification-type", "Multilabel", "--json",
    )
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["classificationType"] == "Multilabel"
    by_id = {d["id"]: d for d in domains(capsys)}
    chosen = by_id[settings["domainId"]]
    assert (chosen["name"], chosen["type"]) == ("General", "Classification")


def test_create_with_domain_id(env, capsys):
    domain = next(d for d in domains(capsys) if d["type"] == "Classification")
    code, out, err = cli(capsys, "projects", "create", "by-id", "--domain", domain["id"], "--json")
    assert code == 0, err
    assert json.loads(out)["settings"]["domainId"] == domain["id"]


def test_unknown_domain_is_a_usage_error(env, capsys):
    code, _, err = cli(capsys, "projects", "create", "x", "--domain", "No Such Domain")
    assert code == 2
    assert_one_line_error(err)


def test_detection_and_classification_type_exclude_each_other(env, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["projects", "create", "x", "--detection", "--classification-type", "Multilabel"])
    assert exit_info.value.code == 2


def test_delete_needs_yes_off_a_terminal(env, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - closed with the test process
    assert cli(capsys, "projects", "create", "keep-me")[0] == 0
    code, _, err = cli(capsys, "projects", "delete", "keep-me")
    assert code == 2
    assert_one_line_error(err)
    assert "--yes" in err


def test_delete_unknown_project_is_fatal(env, capsys):
    code, _, err = cli(capsys, "projects", "delete", "no-such-project", "--yes")
    assert code == 3
    assert_one_line_error(err)


def test_a_second_project_with_the_same_name_needs_allow_duplicate(env, capsys):
    assert cli(capsys, "projects", "create", "twin")[0] == 0
    code, _, err = cli(capsys, "projects", "create", "twin")
    assert code == 2
    assert_one_line_error(err)
    assert "--allow-duplicate" in err
    assert cli(capsys, "projects", "create", "twin", "--allow-duplicate")[0] == 0
    # Now the name is ambiguous: commands ask for the id.
    code, _, err = cli(capsys, "tags", "list", "twin")
    assert code == 2
    assert_one_line_error(err)


def test_answering_no_to_delete_is_not_an_error(env, capsys, monkeypatch):
    monkeypatch.setattr("cvbulk.cli._cmd_projects.is_tty", lambda stream=None: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    assert cli(capsys, "projects", "create", "kept")[0] == 0
    code, out, err = cli(capsys, "projects", "delete", "kept")
    assert code == 0, err
    assert "nothing deleted" in out
    assert "kept" in cli(capsys, "projects", "list")[1]


def test_the_tiers_project_limit_says_what_to_do(capsys, monkeypatch, tmp_path):
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    with EmulatorThread(EmulatorConfig(data_dir=tmp_path, tier="F0")) as emu:
        monkeypatch.setenv("VISION_TRAINING_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("VISION_TRAINING_KEY", emu.training_key)
        for name in ("one", "two"):
            assert cli(capsys, "projects", "create", name)[0] == 0
        code, _, err = cli(capsys, "projects", "create", "three")
    assert code == 3
    assert_one_line_error(err)
    assert "cvbulk projects delete PROJECT" in err and "F0 allows 2 projects" in err
