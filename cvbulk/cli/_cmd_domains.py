"""``cvbulk domains``: the domains (base models) a project can be created with."""

from __future__ import annotations

import argparse
from typing import Any

from ._format import emit, finish_leaf_parser, leaf_parser, training_client

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
    finish_leaf_parser(parser, _run)


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



async def _run(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        domains = await client.get_domains()
    if args.type:
        domains = [d for d in domains if str(d.type).lower() == args.type.lower()]
    domains.sort(key=lambda d: (str(d.type), str(d.name)))
    rows = [[d.id, d.name, d.type, "yes" if d.exportable else "no", _platforms(d)] for d in domains]
    emit(args, domains, rows, ["ID", "NAME", "TYPE", "EXPORTABLE", "PLATFORMS"])
    return 0
