"""``cvbulk unpublish``: take a published iteration off the prediction endpoint."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import CLIError, ExitCode, print_json
from ._format import (
    add_project_arg,
    find_iteration,
    finish_leaf_parser,
    leaf_parser,
    resolve,
    say,
    to_json,
    training_client,
)

EPILOG = """\
examples:
  cvbulk unpublish --project birds                   # the one published iteration
  cvbulk unpublish --project birds --name birdsModel
  cvbulk unpublish --project birds --iteration latest

An iteration that is not published is left as it is (exit 0).
"""


HELP = "unpublish an iteration (its published name stops answering)"
DESCRIPTION = (
    "Unpublish an iteration. Without --iteration or --name: the project's published "
    "iteration, when there is exactly one."
)


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "unpublish", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    add_project_arg(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--iteration", metavar="ID|latest", default=None, help="iteration id or name, or latest"
    )
    which.add_argument("--name", metavar="NAME", default=None, help="the published name")
    finish_leaf_parser(parser, _run)



def _published_name(iteration: Any) -> str | None:
    return getattr(iteration, "publish_name", None) or None


async def _target(client: Any, project: Any, args: argparse.Namespace) -> Any:
    if args.iteration is not None:
        return await find_iteration(client, project, args.iteration)
    published = [it for it in await client.get_iterations(project.id) if _published_name(it)]
    if args.name is not None:
        for iteration in published:
            if _published_name(iteration) == args.name:
                return iteration
        names = ", ".join(repr(_published_name(it)) for it in published) or "none"
        raise CLIError(
            f"project {project.name!r} has nothing published as {args.name!r} (published names: {names})",
            ExitCode.FATAL,
        )
    if len(published) > 1:
        names = ", ".join(f"{_published_name(it)} ({it.name})" for it in published)
        raise CLIError(f"several iterations are published ({names}); pick one with --name", ExitCode.USAGE)
    if not published:
        return None
    return published[0]


async def _run(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        project = await resolve(client, args.project)
        iteration = await _target(client, project, args)
        was_published = _published_name(iteration) if iteration is not None else None
        if was_published:
            await client.unpublish_iteration(project.id, iteration.id)
    if args.json:
        print_json(
            {
                "project": project.id,
                "iteration": to_json(iteration),
                "unpublished": was_published,
            }
        )
    elif iteration is None:
        say(f"project {project.name!r} has no published iteration: nothing to do")
    elif not was_published:
        say(f"iteration {iteration.name!r} (id {iteration.id}) is not published: nothing to do")
    else:
        say(f"unpublished {was_published!r}: iteration {iteration.name!r} (id {iteration.id})")
    return 0
