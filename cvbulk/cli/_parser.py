"""The argument parser every cvbulk command uses, and what ``build_parser`` adds to all of them.

argparse's defaults surprise people in three ways this module turns off: ``--proj`` silently taken as
``--project`` (abbreviations), a mistyped command answered with a list of every command, and a
mistyped flag hidden behind "the following arguments are required" (argparse checks required
arguments before it reports unknown ones).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

__all__ = [
    "CvbulkParser",
    "PROGRESS_MODES",
    "finish_parsers",
    "leaf_parsers",
    "env_epilog",
]

#: --progress: auto (a bar on a terminal, plain lines otherwise), bar, plain (one line per update), none.
PROGRESS_MODES = ("auto", "bar", "plain", "none")

# The connection flags (by dest) and the variables they fall back to, in the order --help lists them.
_STORAGE_VARIABLES = (
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
)
_ENVIRONMENT = (
    ("training_endpoint", ("VISION_TRAINING_ENDPOINT", "VISION_TRAINING_KEY")),
    ("prediction_endpoint", ("VISION_PREDICTION_ENDPOINT", "VISION_PREDICTION_KEY")),
    ("prediction_resource_id", ("VISION_PREDICTION_RESOURCE_ID",)),
    ("to_endpoint", ("VISION_TARGET_TRAINING_ENDPOINT", "VISION_TARGET_TRAINING_KEY")),
    ("tier", ("CVBULK_TIER",)),
    # a container as ROOT (--via: upload, predict) or as the destination (export --to)
    ("via", _STORAGE_VARIABLES),
    ("to", _STORAGE_VARIABLES),
)


class _Probe(Exception):
    """An error raised by the unknown-flags probe instead of exiting."""


class CvbulkParser(argparse.ArgumentParser):
    """No abbreviations; "did you mean" for a mistyped command or flag; unknown flags first."""

    _probing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if CvbulkParser._probing:
            raise _Probe(message)
        super().error(message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if isinstance(action, argparse._SubParsersAction) and choices is not None and value not in choices:
            names = [str(name) for name in choices]
            close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (choose from {', '.join(names)})"
            raise argparse.ArgumentError(action, f"unknown command {value!r}{hint}")
        super()._check_value(action, value)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        _LAST_PARSED[0] = self  # the innermost parser to run is the subcommand the line is for
        return super().parse_known_args(args, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        if not any(a in ("-h", "--help", "--version") for a in argv):
            self._report_unknown_first(argv)
        return super().parse_args(argv, namespace)

    def _report_unknown_first(self, argv: list[str]) -> None:
        """Parse once with nothing required: an unknown flag is then reported (with a guess) even
        when a required argument is missing too, which argparse would report instead."""
        saved = [(action, action.required) for action in _all_actions(self)]
        CvbulkParser._probing = True
        _LAST_PARSED[0] = self
        try:
            for action, _ in saved:
                if not isinstance(action, argparse._SubParsersAction):
                    action.required = False
            _, unknown = self.parse_known_args(argv, argparse.Namespace())
        except _Probe:
            return  # the real parse reports it, with the usage of the right parser
        finally:
            CvbulkParser._probing = False
            for action, required in saved:
                action.required = required
        if unknown:
            leaf = _LAST_PARSED[0] or self
            leaf.error(_unknown_message(leaf, unknown))


_LAST_PARSED: list[CvbulkParser | None] = [None]


def _unknown_message(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    message = "unrecognized arguments: " + " ".join(unknown)
    flags = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    first = next((u.split("=", 1)[0] for u in unknown if u.startswith("--")), None)
    if first:
        close = difflib.get_close_matches(first, flags, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]}?)"
    return message


def _all_actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                yield from _all_actions(sub)


def leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(``"projects list"``, parser) for every parser that runs a command (has no subcommands)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for action in subs:
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias
                continue
            seen.add(id(sub))
            yield from leaf_parsers(sub, f"{prefix} {name}".strip())


def env_epilog(parser: argparse.ArgumentParser) -> str:
    """The environment variables ``parser``'s command reads, given by which flags it has."""
    dests = {action.dest for action in parser._actions}
    names = [name for dest, group in _ENVIRONMENT if dest in dests for name in group]
    if not names:
        return ""
    return "environment: " + ", ".join(names) + " (a flag given wins over its variable)"


def _tier(text: str) -> str:
    # --tier f0 / CVBULK_TIER=s0: the canonical spelling, checked against the choices after.
    for name in ("F0", "S0", "unlimited"):
        if name.lower() == text.strip().lower():
            return name
    return text


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    dests = {action.dest for action in parser._actions}
    group = parser.add_argument_group("output")
    if "quiet" not in dests:
        group.add_argument(
            "-q", "--quiet", action="store_true", default=False, help="print only warnings, errors and results"
        )
    if "verbose" not in dests:
        group.add_argument(
            "-v", "--verbose", action="count", default=0, help="say more (repeat for more: -vv)"
        )
    if "progress" not in dests:
        group.add_argument(
            "--progress",
            choices=PROGRESS_MODES,
            default="auto",
            help="progress display: auto (a bar on a terminal, plain lines in logs), bar, plain, none "
            "(default: auto)",
        )


def finish_parsers(root: argparse.ArgumentParser) -> None:
    """What every command gets, added once all commands have registered their parsers."""
    for _, parser in leaf_parsers(root):
        for action in parser._actions:
            if action.dest == "tier" and action.choices is not None and action.type is None:
                action.type = _tier
        _add_output_flags(parser)
        env = env_epilog(parser)
        if env and env not in (parser.epilog or ""):
            parser.epilog = f"{parser.epilog.rstrip()}\n\n{env}" if parser.epilog else env
            if parser.formatter_class is argparse.HelpFormatter:
                # The epilog's own lines must survive; the description is wrapped by hand instead.
                parser.formatter_class = argparse.RawDescriptionHelpFormatter
                import textwrap

                if parser.description:
                    parser.description = textwrap.fill(parser.description, width=95)
