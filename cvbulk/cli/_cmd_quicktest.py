"""``cvbulk quicktest``: score one image with a trained iteration, using the training key only."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import print_json
from ._format import (
    add_iteration_arg,
    add_project_arg,
    add_threshold_arg,
    find_iteration,
    finish_leaf_parser,
    leaf_parser,
    predictions_json,
    print_predictions,
    read_image,
    resolve,
    say,
    training_client,
)

EPILOG = """\
examples:
  cvbulk quicktest test_image.jpg --project birds
  cvbulk quicktest test_image.jpg --project birds --iteration "Iteration 1" --json

No publishing needed: the training resource scores the image. For the published model and the
prediction key, see `cvbulk classify`; for many images, `cvbulk predict`.
"""


HELP = "score one image with a trained iteration (training key; no publishing needed)"


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "quicktest", help=HELP, epilog=EPILOG)
    parser.add_argument("image", metavar="IMAGE", help="the image file")
    add_project_arg(parser)
    add_iteration_arg(parser)
    parser.add_argument(
        "--store", action="store_true", help="keep the image in the project's predictions"
    )
    add_threshold_arg(parser)
    finish_leaf_parser(parser, _run)



async def _run(args: argparse.Namespace) -> int:
    data = await read_image(args.image, limits_name="TRAINING_LIMITS")
    async with training_client(args) as client:
        project = await resolve(client, args.project)
        iteration = await find_iteration(client, project, args.iteration)
        result = await client.quick_test_image(
            project.id, data, iteration_id=iteration.id, store=args.store
        )
    detect = any(p.bounding_box is not None for p in result.predictions)
    if args.json:
        print_json(predictions_json(result, image=args.image, threshold=args.threshold))
    else:
        say(f"{args.image}: iteration {iteration.name!r} of project {project.name!r}")
        print_predictions(result, threshold=args.threshold, detect=detect)
    return 0
