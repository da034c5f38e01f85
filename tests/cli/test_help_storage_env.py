"""Each --help ends with the variables its command reads: the blob-storage ones too where a container can be
ROOT (upload, predict) or the destination (export --to)."""

from __future__ import annotations

import pytest

from cvbulk.cli import build_parser
from cvbulk.cli._parser import leaf_parsers

LEAVES = dict(leaf_parsers(build_parser()))
STORAGE = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN")


def _environment_line(command: str) -> str:
    text = LEAVES[command].format_help()
    return next(line for line in text.splitlines() if line.startswith("environment: "))


@pytest.mark.parametrize("command", ["upload", "predict", "export"])
def test_blob_commands_name_the_storage_variables(command):
    line = _environment_line(command)
    for name in STORAGE:
        assert name in line, (command, line)


@pytest.mark.parametrize("command", ["train", "classify", "migrate"])
def test_other_commands_do_not(command):
    assert "AZURE_STORAGE" not in _environment_line(command)
