"""The end of a run on screen: one set of figures (final line = table), the first failures with their
reasons, "already done" for what an earlier run finished, and the reason for exit status 1 in one line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cvbulk.cli._common import failure_lines, failure_summary, finish, show_report
from cvbulk.pipeline.report import build_report
from cvbulk.pipeline.results import UploadResult
from tests.cli.test_cmd_upload import cvbulk, env_for
from tests.corpus import make_tree


def _result(failures: list[dict], counts: dict[str, int], unchanged: int = 0) -> UploadResult:
    report = build_report(
        job="upload", started=0.0, finished=2.0, counts=counts, failures=failures,
        client_stats={"bytes_sent": 1_000_000}, extra={"unchanged": unchanged},
    )
    return UploadResult(ok=not failures, report=report, state_file=Path("s.sqlite"), report_file=Path("r.json"))


def test_first_ten_failures_listed_with_reasons_then_how_many_more() -> None:
    failures = [{"path": f"a/{i:02d}.jpg", "status": "failed", "reason": f"reason {i}"} for i in range(13)]
    lines = failure_lines(failures)
    assert lines[0] == "failed (the first 10 of 13):"
    assert lines[1].split() == ["a/00.jpg", "reason", "0"] and len(lines) == 12
    assert lines[-1] == "  ... and 3 more in the report"
    # A hostile name cannot drive the terminal.
    evil = failure_lines([{"path": "x\x1b]0;pwned\x07.jpg", "status": "rejected", "reason": "not an image"}])
    assert "\x1b" not in "".join(evil) and "\\x1b" in evil[1]


def test_reason_for_exit_1_in_one_line(capsys) -> None:
    failed = _result([{"path": "a.jpg", "status": "failed", "reason": "HTTP 500"}], {"uploaded": 996, "failed": 1}, 3)
    assert failure_summary(failed) == (
        "1 of 1,000 images failed: see the report r.json (run the same command again to retry them)"
    )
    rejected = _result([{"path": "a.jpg", "status": "rejected", "reason": "not an image"}] * 3, {"rejected": 3})
    assert failure_summary(rejected) == (
        "3 of 3 images failed: see the report r.json (fix or remove them, then run the same command again)"
    )
    assert failure_summary(_result([], {"uploaded": 2})) is None
    assert finish(failed) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("1 of 1,000 images failed") and err[1].startswith("state: ")
    assert finish(failed, quiet=True) == 1  # the reason stays, even with --quiet
    assert capsys.readouterr().err.count("\n") == 1


def test_show_report_final_line_table_and_failures(capsys) -> None:
    result = _result([{"path": "b/x.jpg", "status": "rejected", "reason": "not an image"}],
                     {"uploaded": 8, "rejected": 1}, unchanged=1)
    args = argparse.Namespace(json=False, quiet=False)
    show_report(args, result, "upload")
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first == "upload done: 10 files in 2.0 s (uploaded 8, rejected 1, already done 1)  4.5 images/s  0.50 MB/s"
    assert re.search(r"^already done +1$", err, re.M) and re.search(r"^images/s +4\.5$", err, re.M)
    assert "failed:\n  b/x.jpg  not an image" in err


def test_real_upload_lists_failures_and_says_why_it_exits_1(tmp_path, emulator) -> None:
    root = tmp_path / "tree"
    make_tree(root, {"a": 3})
    for i in range(2):
        (root / "a" / f"bad_{i}.jpg").write_text("not an image\n")
    env = env_for(emulator)
    argv = ("upload", str(root), "--project", "runend", "--create", "--tier", "unlimited", "--progress", "plain")
    first = cvbulk(*argv, env=env, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    err = first.stderr
    assert "failed:\n  a/bad_0.jpg  not an image" in err and "a/bad_1.jpg" in err
    assert re.search(r"^2 of 5 images failed: see the report .*report\.json \(fix or remove them", err, re.M), err
    assert err.splitlines()[:3] == ["upload: creating classification project 'runend'",
                                    "upload: creating 1 tag", err.splitlines()[2]]
    assert err.splitlines()[2].startswith("upload done: 5 files in ")
    second = cvbulk(*argv, env=env, cwd=tmp_path)
    assert re.search(r"^already done +\d+$", second.stderr, re.M), second.stderr
    assert "skipped" not in second.stderr.split("\n\n")[0]


def test_cvbulk_tier_any_case_everywhere_and_a_wrong_one_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    from cvbulk.cli import build_parser, main

    monkeypatch.setenv("CVBULK_TIER", "f0")
    parser = build_parser()
    for argv in (["upload", "R", "--project", "p"], ["predict", "R", "--project", "p", "--published-name", "n"],
                 ["export", "o", "--project", "p"], ["bench"], ["emulator"]):
        assert parser.parse_args(argv).tier == "F0", argv
    assert parser.parse_args(["bench", "--tier", "UNLIMITED"]).tier == "unlimited"
    monkeypatch.setenv("CVBULK_TIER", "gold")
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("VISION_TRAINING_KEY", "k" * 32)
    for argv in (["upload", str(tmp_path), "--project", "p"], ["bench", "--emulator"], ["emulator"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err == "cvbulk: error: CVBULK_TIER must be one of F0, S0, unlimited (any case), not 'gold'\n", err


def test_every_error_line_is_terminal_safe(capsys) -> None:
    from cvbulk.cli._common import CLIError, handle_errors
    from cvbulk.pipeline.errors import ProjectNotFound

    def bad_name(_args: argparse.Namespace) -> int:
        raise CLIError("no tag 'a\x1b[2Jb\x07'")

    def gone(_args: argparse.Namespace) -> int:
        raise ProjectNotFound("no project with the id or name 'x\x1b]0;t\x07'")

    for handler, code in ((bad_name, 2), (gone, 3)):
        assert handle_errors(handler, argparse.Namespace()) == code
        err = capsys.readouterr().err
        assert err.startswith("cvbulk: error: ") and "\x1b" not in err and "\x07" not in err and "\\x1b" in err


def test_ctrl_c_outside_a_job_display_is_one_line(capsys) -> None:
    from cvbulk.cli import _progress
    from cvbulk.cli._common import handle_errors

    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    said = _progress._INTERRUPT_SAID[0]
    _progress._INTERRUPT_SAID[0] = False
    try:
        assert handle_errors(interrupted, argparse.Namespace()) == 130
        assert capsys.readouterr().err == "cvbulk: interrupted\n"
        _progress._INTERRUPT_SAID[0] = True  # a job's display said where it stopped: not twice
        assert handle_errors(interrupted, argparse.Namespace()) == 130
        assert capsys.readouterr().err == ""
        _progress._INTERRUPT_SAID[0] = False  # a resumable job with no display (--progress none, -q): say how
        assert handle_errors(interrupted, argparse.Namespace(state=None)) == 130
        assert capsys.readouterr().err == "cvbulk: interrupted: run the same command again to resume\n"
    finally:
        _progress._INTERRUPT_SAID[0] = said
