"""docs/cli.md's reference is generated from the parsers (docs/gen_cli.py); it must not drift from them."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli", REPO / "docs" / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_what_the_parsers_say():
    gen = _generator()
    current = gen.DOC.read_text(encoding="utf-8")
    assert gen.MARKER in current, "docs/cli.md lost its marker line"
    assert current == gen.render(current), (
        "docs/cli.md is out of date with the parsers: run `python docs/gen_cli.py` and commit the result"
    )


def test_every_command_and_flag_is_in_the_docs():
    from cvbulk.cli import build_parser
    from cvbulk.cli._parser import leaf_parsers

    docs = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "proposal" not in docs.lower()
    for name, parser in leaf_parsers(build_parser()):
        assert f"### cvbulk {name}\n" in docs, name
        for action in parser._actions:
            for option in action.option_strings:
                assert f"`{option}" in docs or f", {option}" in docs, f"{name} {option}"
    for name in ("bench", "check", "upload", "predict", "export", "migrate", "emulator", "demo"):
        assert f"### cvbulk {name}\n" in docs


def test_generated_defaults_do_not_depend_on_the_environment(monkeypatch):
    gen = _generator()
    plain = gen.reference()
    monkeypatch.setenv("CVBULK_TIER", "F0")
    monkeypatch.setenv("COLUMNS", "40")
    assert gen.reference() == plain


def test_a_changed_flag_makes_the_docs_stale(monkeypatch):
    """The drift test bites: a parser with one more flag renders differently."""
    import cvbulk.cli._cmd_check as check

    gen = _generator()
    before = gen.reference()
    original = check.register

    def register(subparsers: argparse._SubParsersAction) -> None:
        original(subparsers)
        subparsers.choices["check"].add_argument("--brand-new-flag", default="x", help="new")

    monkeypatch.setattr(check, "register", register)
    after = gen.reference()
    assert after != before and "--brand-new-flag" in after
