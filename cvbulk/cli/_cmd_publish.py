"""``cvbulk publish``: make a trained iteration available on the prediction endpoint under a name."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    ENV_PREDICTION_RESOURCE_ID,
    CLIError,
    ExitCode,
    prediction_resource_id,
    print_json,
)
from ._format import (
    add_iteration_arg,
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
  cvbulk publish --project birds --name birdsModel
  cvbulk publish --project birds --name birdsModel --iteration "Iteration 2" --overwrite

The prediction resource id is the prediction resource's "Resource ID" (Azure portal, Properties):
/subscriptions/.../resourceGroups/.../providers/Microsoft.CognitiveServices/accounts/NAME.
`cvbulk emulator` prints its own as prediction-resource-id=...
"""


HELP = "publish a trained iteration to the prediction endpoint"
DESCRIPTION = (
    "Publish a trained iteration under a name, so that `cvbulk classify` / `cvbulk predict "
    "--published-name NAME` can use it with the prediction key."
)


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "publish", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    add_project_arg(parser)
    parser.add_argument("--name", required=True, metavar="NAME", help="the published name")
    add_iteration_arg(parser)
    parser.add_argument(
        "--prediction-resource-id",
        metavar="ID",
        default=None,
        help=f"the prediction resource's Azure resource id (default: ${ENV_PREDICTION_RESOURCE_ID})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="take the name over if another iteration has it"
    )
    finish_leaf_parser(parser, _run)



async def _run(args: argparse.Namespace) -> int:
    resource_id = prediction_resource_id(args)
    if not resource_id:
        raise CLIError(
            f"no prediction resource id: pass --prediction-resource-id or set {ENV_PREDICTION_RESOURCE_ID}",
            ExitCode.USAGE,
        )
    async with training_client(args) as client:
        project = await resolve(client, args.project)
        iteration = await find_iteration(client, project, args.iteration)
        if str(iteration.status or "").lower() != "completed":
            raise CLIError(
                f"iteration {iteration.name!r} is {iteration.status}, not trained: nothing to publish",
                ExitCode.USAGE,
            )
        published = await client.publish_iteration(
            project.id, iteration.id, args.name, resource_id, overwrite=args.overwrite or None
        )
        if not published:
            raise CLIError(f"the service did not publish iteration {iteration.name!r}", ExitCode.FATAL)
        iteration = await client.get_iteration(project.id, iteration.id)
    if args.json:
        print_json({"project": project.id, "publishName": args.name, "iteration": to_json(iteration)})
    else:
        say(
            f"published iteration {iteration.name!r} (id {iteration.id}) of project {project.name!r} "
            f"as {args.name!r}"
        )
    return 0
