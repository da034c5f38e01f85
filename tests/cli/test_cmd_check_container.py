"""`cvbulk check` given a container location: one clear line (exit 2) saying what to do instead, not a
mangled path ("ROOT 'az:/trees' is not a folder") or an attempt to walk it."""

from __future__ import annotations

import pytest

from ._support import assert_one_line_error, cli


@pytest.mark.parametrize(
    "root",
    ["az://trees/", "https://acct.blob.core.windows.net/trees/Hemlock", "http://127.0.0.1:10000/devstoreaccount1/trees"],
)
def test_check_of_a_container_is_one_line_naming_the_way_out(capsys, monkeypatch, root):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    code, out, err = cli(capsys, "check", root, "--project", "trees")
    assert code == 2, err
    assert_one_line_error(err)
    assert root in err  # as typed, not 'az:/trees'
    assert "container" in err and "report" in err


def test_check_of_a_container_with_a_sas_never_shows_it(capsys, monkeypatch):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    root = "https://acct.blob.core.windows.net/trees/?sv=2024-08-04&sp=rl&sig=SECRETSIGNATURE0123"
    code, out, err = cli(capsys, "check", root, "--project", "trees")
    assert code == 2 and "SECRETSIGNATURE0123" not in out + err and "sv=" not in err
    assert "https://acct.blob.core.windows.net/trees/" in err


def test_check_of_a_missing_folder_still_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    code, _, err = cli(capsys, "check", str(tmp_path / "nope"), "--project", "trees")
    assert code == 2 and "is not a folder" in err
