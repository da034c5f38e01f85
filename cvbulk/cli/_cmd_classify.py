"""``cvbulk classify``: score one image with a published model, using the prediction key."""

from __future__ import annotations

import argparse
from typing import Any

from ..client._errors import BadRequestError, NotFoundError
from ._common import CLIError, ExitCode, print_json
from ._format import (
    add_threshold_arg,
    finish_leaf_parser,
    is_uuid,
    leaf_parser,
    prediction_client,
    predictions_json,
    print_predictions,
    published_names,
    read_image,
    resolve,
    say,
    training_client,
)

# What the service answers a classify call on a detection model (and the reverse).
WRONG_KIND = "BadRequestInvalidPublishTarget"

EPILOG = """\
examples:
  cvbulk classify test_image.jpg --project 0f0e... --published-name birdsModel
  cvbulk classify test_image.jpg --project cutlery --published-name detectModel --detect --json

PROJECT by name needs the training endpoint and key too (names are looked up there); by id,
the prediction key alone is enough. For a folder of images use `cvbulk predict`.
"""


HELP = "score one image with a published model (prediction key)"


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "classify", help=HELP, epilog=EPILOG)
    parser.add_argument("image", metavar="IMAGE", help="the image file")
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id (or exact name)")
    parser.add_argument(
        "--published-name", required=True, metavar="NAME", help="the name the iteration was published as"
    )
    parser.add_argument(
        "--detect", action="store_true", help="object detection (DetectImage): tags with boxes"
    )
    parser.add_argument(
        "--store", action="store_true", help="keep the image in the project's predictions (default: no store)"
    )
    add_threshold_arg(parser)
    finish_leaf_parser(parser, _run, prediction=True)



async def _project_id(args: argparse.Namespace) -> str:
    if is_uuid(args.project):
        return args.project.strip()
    try:
        client = training_client(args)
    except CLIError:
        raise CLIError(
            f"PROJECT {args.project!r} is a name: give the project id, or the training endpoint and "
            "key to look the name up",
            ExitCode.USAGE,
        ) from None
    async with client:
        return (await resolve(client, args.project)).id


async def _no_such_name(args: argparse.Namespace, project_id: str) -> str:
    """The published name is unknown: list the ones that exist, when the training key can tell."""
    message = f"project {args.project!r} has nothing published as {args.published_name!r}"
    try:
        client = training_client(args)
    except CLIError:
        return f"{message} (with the training key set, cvbulk lists the names that exist)"
    async with client:
        names = published_names(await client.get_iterations(project_id))
    if not names:
        return f"{message}, nor under any name: publish an iteration first (cvbulk publish --project ... --name NAME)"
    return f"{message}; published names: {', '.join(repr(n) for n in names)}"


async def _run(args: argparse.Namespace) -> int:
    data = await read_image(args.image, limits_name="PREDICTION_LIMITS")
    client = prediction_client(args)  # checks the prediction settings before any lookup
    project_id = await _project_id(args)
    async with client:
        score = client.detect_image if args.detect else client.classify_image
        try:
            result = await score(project_id, args.published_name, data, store=args.store)
        except NotFoundError as exc:
            if "iteration" not in f"{exc.code} {exc.message}".lower() and "publish" not in str(exc.message).lower():
                raise
            raise CLIError(await _no_such_name(args, project_id), ExitCode.FATAL) from None
        except BadRequestError as exc:
            if exc.code != WRONG_KIND and "detect" not in str(exc.message).lower():
                raise
            hint = "drop --detect (it is a classification model)" if args.detect else (
                "add --detect (it is an object-detection model)"
            )
            raise CLIError(
                f"{args.published_name!r} cannot {'detect' if args.detect else 'classify'}: {hint}",
                ExitCode.USAGE,
            ) from None
    if args.json:
        print_json(predictions_json(result, image=args.image, threshold=args.threshold))
    else:
        say(f"{args.image}: {args.published_name!r} of project {project_id}")
        print_predictions(result, threshold=args.threshold, detect=args.detect)
    return 0
