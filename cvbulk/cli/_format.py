"""Shared helpers of the project-management commands: output formatting and small look-ups.

Kept apart from ``_common`` (the frame every command shares) because only the quickstart commands
(domains, projects, tags, train, publish, unpublish, quicktest, classify, demo) use them.
"""

from __future__ import annotations

import argparse
import functools
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import anyio

from ..client import is_uuid
from ._common import (
    ENV_PREDICTION_ENDPOINT,
    ENV_PREDICTION_KEY,
    ENV_TRAINING_ENDPOINT,
    ENV_TRAINING_KEY,
    CLIError,
    ExitCode,
    add_common_args,
    add_prediction_args,
    add_training_args,
    prediction_connection,
    print_json,
    print_table,
    training_connection,
)

__all__ = [
    "add_threshold_arg",
    "add_project_arg",
    "add_iteration_arg",
    "group_parser",
    "finish_leaf_parser",
    "add_output_args",
    "leaf_parser",
    "is_uuid",
    "is_tty",
    "to_json",
    "emit",
    "safe_table",
    "say",
    "terminal_safe",
    "fmt_pct",
    "fmt_float",
    "read_image",
    "print_predictions",
    "predictions_json",
    "newest_completed_iteration",
    "find_iteration",
    "training_client",
    "prediction_client",
    "resolve",
    "run_command",
    "key_advice",
    "published_names",
]

def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON (for scripts) instead of a table"
    )


def leaf_parser(
    subparsers: Any, name: str, *, help: str, description: str | None = None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand parser with the frame's --debug and a raw epilog (examples keep their lines)."""
    parser = subparsers.add_parser(
        name,
        help=help,
        # The raw formatter keeps the epilog's lines; the description is wrapped here instead.
        description=textwrap.fill(description or help, width=95),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_args(parser)
    return parser


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


def terminal_safe(text: object) -> str:
    """``text`` with control characters (ESC, CR, BEL, C1 ...) shown as ``\\xNN``.

    Tag names, file names and service messages are data: printed raw, an ESC sequence in one could
    clear the screen or set the window title. Every table cell and message goes through this.
    """
    return str(text).translate(_CONTROL)


def say(text: object, file: IO[str] | None = None) -> None:
    """``print`` for a message: control characters escaped, flushed (so it keeps its place among
    progress lines on stderr)."""
    print(terminal_safe(text), file=file or sys.stdout, flush=True)


def is_tty(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def to_json(obj: Any) -> Any:
    """A client model (or a list of them) as the service's JSON shape."""
    if isinstance(obj, (list, tuple)):
        return [to_json(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_json(value) for key, value in obj.items()}
    to_json_method = getattr(obj, "to_json", None)
    if callable(to_json_method):
        return to_json_method()
    return obj


def safe_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], file: IO[str] | None = None) -> None:
    """``print_table`` with every cell through ``terminal_safe`` (names come from the service: data)."""
    cells = [[None if value is None else terminal_safe(value) for value in row] for row in rows]
    print_table(cells, [terminal_safe(h) for h in headers], file=file)


def emit(
    args: argparse.Namespace, payload: Any, rows: Sequence[Sequence[Any]], headers: Sequence[str]
) -> None:
    """--json prints ``payload``; otherwise a table of ``rows``."""
    if getattr(args, "json", False):
        print_json(to_json(payload))
    else:
        safe_table(rows, headers)


def fmt_pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def fmt_float(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


async def read_image(path: str, *, limits_name: str) -> bytes:
    """The bytes to send for one image, checked (and fixed if needed) like the bulk pipelines do.

    Going through ``prepare_image`` means an image too large for the service is downscaled and
    re-encoded the same way ``cvbulk upload`` / ``cvbulk predict`` would, instead of a bare 400.
    """
    from ..pipeline import prepare

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"no such image file: {path}", ExitCode.USAGE)
    limits = getattr(prepare, limits_name)
    result = await anyio.to_thread.run_sync(lambda: prepare.prepare_image(file, limits=limits))
    if isinstance(result, prepare.Rejected):
        raise CLIError(f"{path}: {result.reason}", ExitCode.USAGE)
    return result.data


def _prediction_sort_key(prediction: Any) -> float:
    return -(prediction.probability or 0.0)


def predictions_json(result: Any, *, image: str, threshold: float) -> dict[str, Any]:
    data = to_json(result)
    data["image"] = image
    data["predictions"] = [
        to_json(p)
        for p in sorted(result.predictions, key=_prediction_sort_key)
        if (p.probability or 0.0) >= threshold
    ]
    return data


def print_predictions(result: Any, *, threshold: float, detect: bool) -> None:
    """Tags best first, with the box for detections."""
    ranked = sorted(result.predictions, key=_prediction_sort_key)
    shown = [p for p in ranked if (p.probability or 0.0) >= threshold]
    if detect:
        rows = []
        for p in shown:
            box = p.bounding_box
            rows.append(
                [
                    p.tag_name,
                    fmt_pct(p.probability),
                    fmt_float(box.left if box else None),
                    fmt_float(box.top if box else None),
                    fmt_float(box.width if box else None),
                    fmt_float(box.height if box else None),
                ]
            )
        safe_table(rows, ["TAG", "PROBABILITY", "LEFT", "TOP", "WIDTH", "HEIGHT"])
    else:
        safe_table([[p.tag_name, fmt_pct(p.probability)] for p in shown], ["TAG", "PROBABILITY"])
    if not shown:
        print(f"(no prediction at or above {threshold:.0%})")


def _is_completed(iteration: Any) -> bool:
    # The spec leaves Iteration.status an untyped string: compare as opaque text.
    return str(iteration.status or "").lower() == "completed"


def _iteration_time(iteration: Any) -> str:
    # ISO-8601 strings (or datetimes) sort by time; trained_at is when the model was made.
    value = getattr(iteration, "trained_at", None) or getattr(iteration, "created", None) or ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


async def newest_completed_iteration(client: Any, project: Any) -> Any:
    """The project's most recently trained iteration whose training completed."""
    iterations = [it for it in await client.get_iterations(project.id) if _is_completed(it)]
    if not iterations:
        raise CLIError(
            f"project {project.name!r} has no trained iteration yet "
            f"(run: cvbulk train --project {project.name!r} --wait)",
            ExitCode.FATAL,
        )
    return max(iterations, key=_iteration_time)


async def find_iteration(client: Any, project: Any, ref: str | None) -> Any:
    """An iteration by id, by name, or "latest" (the newest completed one)."""
    if ref is None or ref.lower() == "latest":
        return await newest_completed_iteration(client, project)
    iterations = await client.get_iterations(project.id)
    for iteration in iterations:
        if str(iteration.id).lower() == ref.lower():
            return iteration
    named = [it for it in iterations if it.name == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise CLIError(f"{len(named)} iterations are named {ref!r}; give the iteration id", ExitCode.USAGE)
    raise CLIError(f"project {project.name!r} has no iteration {ref!r}", ExitCode.FATAL)


def training_client(args: argparse.Namespace) -> Any:
    """A TrainingClient for the connection the flags / VISION_* variables give (use with ``async with``)."""
    from ..client import TrainingClient

    connection = training_connection(args)
    return TrainingClient(connection.endpoint, connection.key)


def prediction_client(args: argparse.Namespace) -> Any:
    """A PredictionClient for the prediction endpoint and key (use with ``async with``)."""
    from ..client import PredictionClient

    connection = prediction_connection(args)
    return PredictionClient(connection.endpoint, connection.key)


async def resolve(client: Any, ref: str) -> Any:
    """A project by id or exact name (the same rules as every other command)."""
    from ..pipeline.project import resolve_project

    return await resolve_project(client, ref)


def add_threshold_arg(parser: Any) -> None:
    """``--threshold P`` of the one-image scoring commands (classify, quicktest)."""
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        metavar="P",
        help="show predictions with at least this probability (default: all)",
    )


# -- errors that say what to do next ------------------------------------------------------------------


def add_project_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id or exact name")


def add_iteration_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--iteration",
        metavar="ID|latest",
        default="latest",
        help="iteration id or name; latest (default) = the newest completed iteration",
    )


def group_parser(
    subparsers: Any, name: str, *, help: str, description: str, epilog: str, handler: Callable[..., int]
) -> Any:
    """A command with actions (``cvbulk projects list``) run by ``handler``: its parser's subparsers, for the
    actions."""
    parser = subparsers.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(handler=handler)
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def finish_leaf_parser(
    parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], Awaitable[int]], *, prediction: bool = False
) -> None:
    """The tail of a one-shot command's parser: --json, the connection flags (prediction's first when the
    command scores), and the handler that runs ``body`` with :func:`run_command`."""
    add_output_args(parser)
    if prediction:
        add_prediction_args(parser)
    add_training_args(parser)
    parser.set_defaults(handler=functools.partial(run_command, body))


def run_command(body: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """``anyio.run(body, args)``, with a refused key turned into advice on which key it looks like."""
    from ..client._errors import AuthenticationError

    try:
        return int(anyio.run(body, args))
    except AuthenticationError as exc:
        advice = anyio.run(key_advice, args, exc)
        raise CLIError(advice, ExitCode.FATAL) from None


def _is_prediction_call(exc: Any) -> bool:
    return str(getattr(exc, "operation", "") or "").startswith(("Classify", "Detect"))


async def key_advice(args: argparse.Namespace, exc: Any) -> str:
    """What a 401 means. The failing call says which API refused; a cheap probe of the other API with
    the same key says whether the user swapped the two keys (the most common mistake)."""
    from ..client._errors import AuthenticationError, CustomVisionError

    prediction = _is_prediction_call(exc)
    api, var, flag, other = (
        ("prediction", ENV_PREDICTION_KEY, "--prediction-key", "training")
        if prediction
        else ("training", ENV_TRAINING_KEY, "--key", "prediction")
    )
    head = f"the service refused the {api} key ({getattr(exc, 'operation', None) or 'HTTP 401'})"
    try:
        swapped = await _works_on_other_api(args, prediction=prediction)
    except (AuthenticationError, CustomVisionError, CLIError, OSError, TimeoutError):
        swapped = False
    if swapped:
        return (
            f"{head}: this looks like a {other} key; {var} (or {flag}) must be the {api} resource's key "
            "(Azure portal: the resource's Keys and Endpoint page)"
        )
    return f"{head}: check {var} (or {flag}) and that the endpoint is the {api} resource's"


async def _works_on_other_api(args: argparse.Namespace, *, prediction: bool) -> bool:
    """Does the key that was refused work on the other API? Any answer but 401 means it does."""
    from ..client import PredictionClient, TrainingClient
    from ..client._errors import AuthenticationError, CustomVisionError

    with anyio.fail_after(10):
        if prediction:  # the prediction key, tried on the training API
            key = prediction_connection(args).key
            endpoint = (_setting_of(args, "training_endpoint", ENV_TRAINING_ENDPOINT)
                        or prediction_connection(args).endpoint)
            async with TrainingClient(endpoint, key) as client:
                try:
                    await client.get_domains()
                except AuthenticationError:
                    return False
                except CustomVisionError:
                    return True
                return True
        key = training_connection(args).key
        endpoint = (_setting_of(args, "prediction_endpoint", ENV_PREDICTION_ENDPOINT)
                    or training_connection(args).endpoint)
        async with PredictionClient(endpoint, key) as prediction_client:
            try:  # a project that does not exist: 404 with a good key, 401 with a wrong one
                await prediction_client.classify_image(
                    "00000000-0000-0000-0000-000000000000", "cvbulk-key-probe", b"\xff\xd8\xff\xd9"
                )
            except AuthenticationError:
                return False
            except CustomVisionError:
                return True
            return True


def _setting_of(args: argparse.Namespace, attr: str, env: str) -> str | None:
    import os

    value = getattr(args, attr, None) or os.environ.get(env) or None
    return value.strip().rstrip("/") if value else None


def published_names(iterations: Iterable[Any]) -> list[str]:
    """The names a project's iterations are published under, sorted."""
    return sorted({str(it.publish_name) for it in iterations if getattr(it, "publish_name", None)})
