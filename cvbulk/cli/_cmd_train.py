"""``cvbulk train``: start training a project, optionally wait for it and show how good the model is."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..client._errors import BadRequestError
from ._common import CLIError, ExitCode, print_json
from ._format import (
    add_project_arg,
    finish_leaf_parser,
    fmt_pct,
    leaf_parser,
    resolve,
    safe_table,
    say,
    terminal_safe,
    to_json,
    training_client,
)
from ._spinner import spinner_for

EPILOG = """\
examples:
  cvbulk train --project birds --wait
  cvbulk train --project birds --wait --selected-tags robin wren --timeout 1800
  cvbulk train --project birds --force        # retrain although nothing changed
  cvbulk train --project birds --wait         # while a training runs: wait for that one

exit status: 0 trained (or started, without --wait); 1 the service refused to train (its reason is
printed, e.g. not enough images per tag, nothing changed since the last training), training failed, or
--timeout passed first; 2 usage; 3 fatal (key, project not found).
"""

DONE_STATUSES = ("completed", "failed")
IN_PROGRESS = "BadRequestTrainingAlreadyInProgress"
# The service's minimums (its limits page): images per tag, regions per tag for object detection.
MIN_IMAGES_PER_TAG = 5
MIN_REGIONS_PER_TAG = 15


HELP = "train a project (a new iteration); --wait for it and its precision/recall"
DESCRIPTION = (
    "Start training a project: the service makes a new iteration from the tagged images. "
    "With --wait, follow it until it completes or fails, then print its precision and "
    "recall per tag."
)


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "train", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    add_project_arg(parser)
    parser.add_argument("--wait", action="store_true", help="wait until training completes or fails")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=3600.0,
        metavar="S",
        help="with --wait: give up waiting after S seconds (default: 3600; training goes on)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="with --wait: the longest pause between status checks (default: 5; starts at 0.2 "
        "and grows, so fast trainings are seen at once)",
    )
    parser.add_argument(
        "--selected-tags",
        nargs="+",
        metavar="NAME",
        default=None,
        help="train on these tags only (names or ids)",
    )
    parser.add_argument(
        "--force", action="store_true", help="train even if nothing changed since the last training"
    )
    parser.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        metavar="P",
        help="probability threshold for the precision/recall shown (service default: 0.5)",
    )
    finish_leaf_parser(parser, _run)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _probability(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"a probability is at most 1: {text!r}")
    return value



async def _selected_tag_ids(client: Any, project: Any, refs: list[str]) -> list[str]:
    tags = await client.get_tags(project.id)
    by_id = {str(t.id).lower(): t for t in tags}
    by_name = {str(t.name).lower(): t for t in tags}
    ids: list[str] = []
    for ref in refs:
        tag = by_id.get(ref.lower()) or by_name.get(ref.lower())
        if tag is None:
            known = ", ".join(sorted(str(t.name) for t in tags)) or "none"
            raise CLIError(f"project {project.name!r} has no tag {ref!r} (tags: {known})", ExitCode.USAGE)
        ids.append(tag.id)
    return ids


async def _run(args: argparse.Namespace) -> int:
    from ..pipeline.engine import retry_text

    async with training_client(args) as client:
        # No silent wait: a retry (a 429 waited out, a 5xx, a dropped connection) is a line on stderr.
        client.on_retry = lambda event: _note(args, f"train: {retry_text(event)}")
        project = await resolve(client, args.project)
        selected = None
        if args.selected_tags:
            selected = await _selected_tag_ids(client, project, args.selected_tags)
        try:
            iteration = await client.train_project(
                project.id, force_train=args.force, selected_tags=selected
            )
        except BadRequestError as exc:
            running = await _running_iteration(client, project) if exc.code == IN_PROGRESS else None
            if running is None or not args.wait:
                # Not enough images per tag, nothing changed...: the service's own words, exit 1.
                advice = await _training_advice(client, project, exc)
                raise CLIError(f"training not started: {_service_words(exc)}{advice}", ExitCode.PARTIAL) from exc
            # `train --wait` after a `train` without it: follow the training already under way.
            say(f"training already in progress: waiting for {running.name!r}", file=sys.stderr)
            iteration = running
        if not args.wait:
            if args.json:
                print_json({"project": project.id, "iteration": to_json(iteration)})
            else:
                say(
                    f"training started: project {project.name!r}, iteration {iteration.name!r} "
                    f"(id {iteration.id}), status {iteration.status}"
                )
            return 0
        iteration = await _wait(client, project, iteration, args)
        status = str(iteration.status or "").lower()
        performance = None
        if status == "completed":
            # Can take seconds on the service: say so rather than sit silent after "Completed".
            _note(args, f"training {iteration.status}: fetching training performance (precision, recall)")
            performance = await client.get_iteration_performance(
                project.id, iteration.id, threshold=args.threshold
            )
    if args.json:
        print_json(
            {"project": project.id, "iteration": to_json(iteration), "performance": to_json(performance)}
        )
    if status != "completed":
        raise CLIError(
            f"training failed: iteration {iteration.name!r} (id {iteration.id}) ended {iteration.status}",
            ExitCode.PARTIAL,
        )
    if not args.json:
        _print_performance(project, iteration, performance)
    return 0


async def _running_iteration(client: Any, project: Any) -> Any:
    training = [it for it in await client.get_iterations(project.id) if str(it.status).lower() == "training"]
    return training[0] if len(training) == 1 else None


async def _training_advice(client: Any, project: Any, exc: BadRequestError) -> str:
    """What to do about a refused training: no images at all, or which tags have too few."""
    if exc.code == "BadRequestTrainingNotNeeded" or "not needed" in str(exc.message).lower():
        return " (nothing changed since the last training; --force trains again)"
    try:
        tagged = await client.get_tagged_image_count(project.id)
        tags = await client.get_tags(project.id)
    except Exception:  # the advice is a courtesy: the service's own words stay the message
        return ""
    name = project.name
    if not tagged:
        return f"; project {name!r} has no tagged images: upload images first (cvbulk upload ROOT --project {name!r})"
    counts = sorted((int(t.image_count or 0), str(t.name)) for t in tags if str(t.type or "Regular") != "Negative")
    few = [f"{tag} {count}" for count, tag in counts if count < MIN_IMAGES_PER_TAG]
    if few:
        return (
            f"; images per tag: {', '.join(few[:8])}{' ...' if len(few) > 8 else ''} "
            f"(each tag needs at least {MIN_IMAGES_PER_TAG}; an object-detection tag {MIN_REGIONS_PER_TAG} regions): "
            "upload more, or leave tags out with --selected-tags"
        )
    return ""


def _service_words(exc: BadRequestError) -> str:
    return f"{exc.code}: {exc.message}" if exc.code else str(exc.message)


async def _wait(client: Any, project: Any, iteration: Any, args: argparse.Namespace) -> Any:
    """Follow the iteration with ``TrainingClient.wait_for_iteration`` (its pause grows from 0.2 s up
    to --poll-interval) until it completes or fails; the status on a spinner, retries above it."""
    from ..client import TrainingFailedError, TrainingTimeoutError
    from ..pipeline.engine import retry_text

    label = terminal_safe(f"training {project.name!r} {iteration.name}")
    async with spinner_for(label, getattr(args, "progress", "auto"), quiet=getattr(args, "quiet", False)) as spinner:
        spinner.update(str(iteration.status))
        outer = client.on_retry
        client.on_retry = lambda event: spinner.say(terminal_safe(f"{label}: {retry_text(event)}"))
        try:
            return await client.wait_for_iteration(
                project.id,
                iteration.id,
                poll=args.poll_interval,
                timeout=args.timeout,
                on_poll=lambda it: spinner.update(str(it.status)),
            )
        except TrainingTimeoutError as exc:
            last = exc.iteration or iteration
            raise CLIError(
                f"training still {last.status} after {args.timeout:g} s (iteration {last.name!r}, "
                f"id {last.id}); it goes on in the service",
                ExitCode.PARTIAL,
            ) from None
        except TrainingFailedError as exc:
            return exc.iteration or iteration  # the caller says "training failed" with its exit status
        finally:
            client.on_retry = outer


def _note(args: argparse.Namespace, text: str) -> None:
    """A phase of a waiting command, on stderr (a terminal or a log alike); --quiet drops it."""
    if not getattr(args, "quiet", False):
        say(text, file=sys.stderr)


def _print_performance(project: Any, iteration: Any, performance: Any) -> None:
    seconds = ""
    minutes = getattr(iteration, "training_time_in_minutes", None)
    if minutes:
        seconds = f" in {minutes} min"
    say(f"trained project {project.name!r}: iteration {iteration.name!r} (id {iteration.id}){seconds}")
    rows = [
        [t.name, fmt_pct(t.precision), fmt_pct(t.recall), fmt_pct(getattr(t, "average_precision", None))]
        for t in sorted(performance.per_tag_performance, key=lambda t: str(t.name).lower())
    ]
    rows.append(
        [
            "(all)",
            fmt_pct(performance.precision),
            fmt_pct(performance.recall),
            fmt_pct(getattr(performance, "average_precision", None)),
        ]
    )
    safe_table(rows, ["TAG", "PRECISION", "RECALL", "AP"])
    sys.stdout.flush()
