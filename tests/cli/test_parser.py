"""The habits every cvbulk command shares, set once in cvbulk.cli (build_parser / _parser)."""

from __future__ import annotations

import pytest

from cvbulk.cli import build_parser, main
from cvbulk.cli._parser import CvbulkParser, leaf_parsers

LEAVES = dict(leaf_parsers(build_parser()))


def _usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_every_parser_refuses_abbreviations():
    assert "upload" in LEAVES and "projects delete" in LEAVES and "check" in LEAVES
    for name, parser in LEAVES.items():
        assert isinstance(parser, CvbulkParser) and parser.allow_abbrev is False, name


@pytest.mark.parametrize("command", ["upload ROOT", "train", "predict ROOT", "export OUT", "check ROOT"])
def test_an_abbreviated_flag_is_an_error_that_suggests_the_flag(capsys, command):
    err = _usage_error(capsys, *command.split(), "--proj", "p")
    assert "unrecognized arguments: --proj p (did you mean --project?)" in err


def test_a_mistyped_command_gets_a_did_you_mean(capsys):
    err = _usage_error(capsys, "uplod", "x")
    assert "unknown command 'uplod'; did you mean 'upload'?" in err
    err = _usage_error(capsys, "projects", "lsit")
    assert "did you mean 'list'?" in err


def test_an_unknown_flag_is_reported_before_a_missing_required_one(capsys):
    err = _usage_error(capsys, "train", "--wiat")  # --project is missing too
    assert "unrecognized arguments: --wiat (did you mean --wait?)" in err
    assert "required" not in err
    err = _usage_error(capsys, "train")  # and alone, the missing one is still reported
    assert "the following arguments are required: --project" in err


def test_every_command_takes_quiet_verbose_and_progress():
    for name, parser in LEAVES.items():
        args = parser.parse_args([*(["ROOT"] if name in ("upload", "predict", "check") else []), "-q", "-vv",
                                  "--progress", "plain", *_required(name)])
        assert (args.quiet, args.verbose, args.progress) == (True, 2, "plain"), name
        defaults = parser.parse_args([*(["ROOT"] if name in ("upload", "predict", "check") else []), *_required(name)])
        assert (defaults.quiet, defaults.verbose, defaults.progress) == (False, 0, "auto"), name


def _required(name: str) -> list[str]:
    """Just enough arguments for each command to parse."""
    needs = {
        "projects create": ["n"], "projects delete": ["p"], "tags list": ["p"], "tags create": ["p", "t"],
        "train": ["--project", "p"], "publish": ["--project", "p", "--name", "n"],
        "unpublish": ["--project", "p"], "quicktest": ["i", "--project", "p"],
        "classify": ["i", "--project", "p", "--published-name", "n"], "upload": ["--project", "p"],
        "predict": ["--project", "p", "--published-name", "n"], "check": ["--project", "p"],
        "export": ["out", "--project", "p"], "migrate": ["--from-project", "a", "--to-project", "b"],
    }
    return needs.get(name, [])


def test_help_lists_the_variables_a_command_reads():
    assert "VISION_TRAINING_KEY" in LEAVES["tags list"].format_help()
    classify = LEAVES["classify"].format_help()
    assert "VISION_PREDICTION_KEY" in classify and "VISION_TRAINING_KEY" in classify
    upload = LEAVES["upload"].format_help()
    assert "environment: VISION_TRAINING_ENDPOINT, VISION_TRAINING_KEY, CVBULK_TIER" in upload
    assert "VISION_PREDICTION_RESOURCE_ID" in LEAVES["publish"].format_help()


def test_tier_takes_any_case(monkeypatch):
    args = LEAVES["upload"].parse_args(["ROOT", "--project", "p", "--tier", "f0"])
    assert args.tier == "F0"
    monkeypatch.setenv("CVBULK_TIER", "unLimited")
    args = LEAVES["check"].parse_args(["ROOT", "--project", "p"])
    from cvbulk.cli._cmd_check import _tier

    assert _tier(args) == "unlimited"
