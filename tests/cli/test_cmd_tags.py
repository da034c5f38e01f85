"""`cvbulk tags list | create` against the threaded emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cvbulk.cli import main

from ._support import VARS, assert_one_line_error, cli, emulator, env  # noqa: F401 (fixtures)


def test_create_then_list_by_name_and_id(env, capsys):
    code, out, err = cli(capsys, "projects", "create", "trees", "--json")
    assert code == 0, err
    project_id = json.loads(out)["id"]

    code, out, err = cli(capsys, "tags", "create", "trees", "Hemlock", "Japanese_Cherry", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert [(r["status"], r["tag"]["name"]) for r in created] == [
        ("created", "Hemlock"),
        ("created", "Japanese_Cherry"),
    ]

    code, out, err = cli(capsys, "tags", "list", project_id)
    assert code == 0, err
    assert out.splitlines()[0].split() == ["ID", "NAME", "TYPE", "IMAGES"]
    assert "Hemlock" in out and "Japanese_Cherry" in out

    code, out, err = cli(capsys, "tags", "list", "trees", "--json")
    assert code == 0, err
    assert sorted(t["name"] for t in json.loads(out)) == ["Hemlock", "Japanese_Cherry"]


def test_create_is_idempotent(env, capsys):
    assert cli(capsys, "projects", "create", "again")[0] == 0
    assert cli(capsys, "tags", "create", "again", "fork")[0] == 0
    code, out, err = cli(capsys, "tags", "create", "again", "fork", "FORK", "scissors", "--json")
    assert code == 0, err
    assert [(r["status"], r["tag"]["name"]) for r in json.loads(out)] == [
        ("exists", "fork"),
        ("created", "scissors"),
    ]
    code, out, _ = cli(capsys, "tags", "list", "again", "--json")
    assert sorted(t["name"] for t in json.loads(out)) == ["fork", "scissors"]


def test_negative_tag_type(env, capsys):
    assert cli(capsys, "projects", "create", "neg")[0] == 0
    code, out, err = cli(capsys, "tags", "create", "neg", "background", "--type", "Negative", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["tag"]["type"] == "Negative"


def test_unknown_project_is_fatal(env, capsys):
    code, _, err = cli(capsys, "tags", "list", "no-such-project")
    assert code == 3
    assert_one_line_error(err)


def test_missing_action_is_a_usage_error(env, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tags"])
    assert exit_info.value.code == 2


def test_control_characters_in_a_tag_name_are_shown_escaped(env, capsys):
    """A tag named with an escape sequence must not set the window title when listed."""
    assert cli(capsys, "projects", "create", "hostile")[0] == 0
    assert cli(capsys, "tags", "create", "hostile", "\x1b]0;pwned\x07")[0] == 0
    code, out, err = cli(capsys, "tags", "list", "hostile")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in out
