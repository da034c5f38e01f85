"""`cvbulk domains` against the threaded emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cvbulk.cli import main

from ._support import VARS, assert_one_line_error, cli, emulator, env  # noqa: F401 (fixtures)


def test_table_lists_general_domains(env, capsys):
    code, out, err = cli(capsys, "domains")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[:3] == ["ID", "NAME", "TYPE"]
    assert "General" in out
    assert "Classification" in out and "ObjectDetection" in out


def test_json_and_type_filter(env, capsys):
    code, out, err = cli(capsys, "domains", "--type", "objectdetection", "--json")
    assert code == 0, err
    domains = json.loads(out)
    assert domains, "the emulator serves object-detection domains"
    assert {d["type"] for d in domains} == {"ObjectDetection"}
    assert all(d["id"] and d["name"] for d in domains)


def test_missing_key_is_a_usage_error(env, capsys, monkeypatch):
    monkeypatch.delenv("VISION_TRAINING_KEY")
    code, _, err = cli(capsys, "domains")
    assert code == 2
    assert_one_line_error(err)
    assert "VISION_TRAINING_KEY" in err


def test_wrong_key_is_fatal_and_never_printed(env, capsys):
    wrong = "0123456789abcdef0123456789abcdef"
    code, out, err = cli(capsys, "domains", "--key", wrong)
    assert code == 3
    assert_one_line_error(err)
    assert wrong not in out + err
