"""The ``cvbulk`` command line.

Each subcommand lives in its own module ``cvbulk.cli._cmd_<name>`` with two functions:
``register(subparsers)`` adds its parser (and calls ``parser.set_defaults(handler=run)``), and
``run(args) -> int`` does the work and returns the exit status (see ``ExitCode``).

What every command shares is added here, after the commands registered their parsers, so that no
command can forget it: ``-q/--quiet``, ``-v/--verbose``, ``--progress``, the list of environment
variables a command reads (in its ``--help``), no abbreviated flags, "did you mean" for a mistyped
command or flag, and a case-insensitive ``--tier``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._parser import CvbulkParser, finish_parsers

__all__ = ["main", "build_parser", "ExitCode", "COMMANDS"]

from ._common import ExitCode, handle_errors
from ._memory import limit_malloc_arenas

# In the order `cvbulk --help` lists them.
COMMANDS = (
    "demo",
    "emulator",
    "domains",
    "projects",
    "tags",
    "upload",
    "check",
    "train",
    "publish",
    "unpublish",
    "quicktest",
    "classify",
    "predict",
    "export",
    "migrate",
    "bench",
)

EPILOG = """\
connection settings come from flags or from the variables of Azure's quickstarts:
  VISION_TRAINING_ENDPOINT, VISION_TRAINING_KEY,
  VISION_PREDICTION_ENDPOINT, VISION_PREDICTION_KEY, VISION_PREDICTION_RESOURCE_ID
  CVBULK_TIER: the pricing tier the jobs pace themselves for (F0, S0, unlimited; default S0)
`cvbulk COMMAND --help` lists the flags and variables of each command.

exit status: 0 all done (check: the tree and the project match); 1 finished but some items failed or
             differ (the report names each); 2 usage or configuration error; 3 fatal (authentication,
             project not found, service unreachable); 130 interrupted (Ctrl-C), 143 stopped by
             SIGTERM: both keep what was done, and the same command resumes
"""


def build_parser() -> argparse.ArgumentParser:
    parser = CvbulkParser(
        prog="cvbulk",
        description=(
            "Bulk upload, batch scoring and migration for Azure Custom Vision, "
            "at the service's rate limit, resumable, with a local emulator."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"cvbulk {__version__}")
    # parser_class: every subcommand's parser (and theirs, e.g. `projects list`) is a CvbulkParser.
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CvbulkParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}._cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}._cmd_{name}":
                continue  # command not built (yet)
            raise
        module.register(subparsers)
    finish_parsers(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    limit_malloc_arenas()  # before any worker thread: see _memory
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    return handle_errors(handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
