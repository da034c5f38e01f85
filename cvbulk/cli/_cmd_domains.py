"""``cvbulk domains``: the domains (base models) a project can be created with."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_training_args
from ._format import add_output_args, emit, leaf_parser, run_command, training_client

DOMAIN_TYPES = ("Classification", "ObjectDetection")

EPILOG = """\
examples:
  cvbulk domains
  cvbulk domains --type ObjectDetection --json

A domain's NAME or ID goes to `cvbulk projects create NAME --domain ...`.
"Compact" domains can be exported (--export-platform) to run offline.
"""


HELP = "list the domains (base models) projects can use"


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "domains", help=HELP, epilog=EPILOG)
    parser.add_argument(
        "--type",
        choices=DOMAIN_TYPES,
        type=_domain_type,
        help="only domains of this type",
    )
    add_output_args(parser)
    add_training_args(parser)
    parser.set_defaults(handler=run)


def _domain_type(text: str) -> str:
    # Accept any case ("objectdetection"); argparse then checks the canonical spelling.
    for name in DOMAIN_TYPES:
        if name.lower() == text.lower():
            return name
    return text


def _platforms(domain: Any) -> str:
    # exportablePlatforms is not one of the model's named fields: it travels in ``extra``.
    platforms = (domain.extra or {}).get("exportablePlatforms") or ()
    return ", ".join(str(p) for p in platforms)


def run(args: argparse.Namespace) -> int:
    return run_command(_run, args)


async def _run(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        domains = await client.get_domains()
    if args.type:
        domains = [d for d in domains if str(d.type).lower() == args.type.lower()]
    domains.sort(key=lambda d: (str(d.type), str(d.name)))
    rows = [[d.id, d.name, d.type, "yes" if d.exportable else "no", _platforms(d)] for d in domains]
    emit(args, domains, rows, ["ID", "NAME", "TYPE", "EXPORTABLE", "PLATFORMS"])
    return 0
