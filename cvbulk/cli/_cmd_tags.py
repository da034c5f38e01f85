"""``cvbulk tags list | create``: a project's tags."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_training_args
from ._format import add_output_args, emit, group_parser, leaf_parser, resolve, run_command, training_client

EPILOG = """\
examples:
  cvbulk tags list birds
  cvbulk tags create birds robin wren "blue tit"
  cvbulk tags create birds background --type Negative

`create` is idempotent: a tag that already exists (same name, any case) is reported, not doubled.
"""


def register(subparsers: Any) -> None:
    actions = group_parser(
        subparsers,
        "tags",
        help="list or create a project's tags",
        description="List or create the tags of a project (PROJECT is its id or exact name).",
        epilog=EPILOG,
        handler=run,
    )

    list_parser = leaf_parser(actions, "list", help="list a project's tags with their image counts")
    list_parser.add_argument("project", metavar="PROJECT", help="project id or exact name")
    add_output_args(list_parser)
    add_training_args(list_parser)

    create = leaf_parser(actions, "create", help="create tags (the ones missing)")
    create.add_argument("project", metavar="PROJECT", help="project id or exact name")
    create.add_argument("names", metavar="NAME", nargs="+", help="tag names")
    create.add_argument("--description", default=None, help="description given to the new tags")
    create.add_argument(
        "--type",
        choices=("Regular", "Negative", "GeneralProduct"),
        default=None,
        help="tag type (default: Regular; one Negative tag per project)",
    )
    add_output_args(create)
    add_training_args(create)


def run(args: argparse.Namespace) -> int:
    body = {"list": _list, "create": _create}[args.action]
    return run_command(body, args)


async def _list(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        project = await resolve(client, args.project)
        tags = await client.get_tags(project.id)
    tags.sort(key=lambda t: str(t.name).lower())
    rows = [[t.id, t.name, t.type, t.image_count] for t in tags]
    emit(args, tags, rows, ["ID", "NAME", "TYPE", "IMAGES"])
    return 0


async def _create(args: argparse.Namespace) -> int:
    names: list[str] = []
    for name in args.names:  # keep the order given, drop repeats
        if name.strip() and name.strip().lower() not in {n.lower() for n in names}:
            names.append(name.strip())
    results: list[tuple[str, Any]] = []
    async with training_client(args) as client:
        project = await resolve(client, args.project)
        # Tag names are unique per project regardless of case on the service.
        existing = {str(t.name).lower(): t for t in await client.get_tags(project.id)}
        for name in names:
            tag = existing.get(name.lower())
            if tag is not None:
                results.append(("exists", tag))
                continue
            tag = await client.create_tag(project.id, name, description=args.description, type=args.type)
            results.append(("created", tag))
    payload = [{"status": status, "tag": tag} for status, tag in results]
    rows = [[status, tag.id, tag.name, tag.type] for status, tag in results]
    emit(args, payload, rows, ["STATUS", "ID", "NAME", "TYPE"])
    return 0
