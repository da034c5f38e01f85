"""``cvbulk demo``: the Custom Vision quickstart end to end, as the cvbulk commands that do each step.

With no endpoint given it starts the embedded emulator; with the VISION_* variables (or flags) it
runs the same steps against Azure. Every step is a real cvbulk command line, parsed and run by the
same code as when typed, and printed with the connection left to the VISION_* variables (keys are
never shown).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._common import (
    ENV_PREDICTION_ENDPOINT,
    ENV_PREDICTION_KEY,
    ENV_PREDICTION_RESOURCE_ID,
    ENV_TRAINING_ENDPOINT,
    ENV_TRAINING_KEY,
    CLIError,
    ExitCode,
    add_prediction_args,
    add_training_args,
    prediction_connection,
    prediction_resource_id,
    remember_secret,
    training_connection,
)
from ._demo_result import check_predictions
from ._demo_samples import CLASSIFICATION, DETECTION, REGIONS_FILE, DemoVariant, find_samples
from ._format import leaf_parser, say

EPILOG = """\
examples:
  cvbulk demo                          # classification (Hemlock / Japanese_Cherry), embedded emulator
  cvbulk demo --detection              # object detection (fork / scissors)
  cvbulk demo --data ./emulator-data   # keep the emulator's data afterwards
  VISION_TRAINING_ENDPOINT=https://<resource>.cognitiveservices.azure.com \\
  VISION_TRAINING_KEY=... VISION_PREDICTION_KEY=... VISION_PREDICTION_RESOURCE_ID=/subscriptions/... \\
  cvbulk demo --cleanup                # the same steps against Azure, deleting the project at the end

The output (prediction CSV, state files) goes to --workdir/<project name>/.
exit status: 0 the test image was predicted as the quickstart says (Hemlock / fork); otherwise the
step that failed and why, in one line.
"""

DEFAULT_WORKDIR = "cvbulk-demo-output"


HELP = "run the Custom Vision quickstart end to end (embedded emulator unless an endpoint is set)"
DESCRIPTION = (
    "Run the Custom Vision quickstart with cvbulk commands: create a project, add tags, "
    "upload and tag the sample images, train and wait, publish, and score the Test folder "
    "into a CSV. Starts the embedded emulator unless an endpoint is given by flag or "
    "$VISION_TRAINING_ENDPOINT."
)


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "demo", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--detection", action="store_true", help="the object-detection quickstart (fork / scissors)"
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        default=DEFAULT_WORKDIR,
        help=f"where the demo writes its files (default: ./{DEFAULT_WORKDIR}/)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="the embedded emulator's data folder (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--samples",
        metavar="DIR",
        default=None,
        help="the sample images (default: the ones installed with cvbulk, cvbulk/samples)",
    )
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="use the embedded emulator even when $VISION_TRAINING_ENDPOINT is set",
    )
    parser.add_argument(
        "--cleanup",
        action="store_true",
        help="unpublish and delete the demo's project at the end (worth it on Azure: F0 allows 2 projects)",
    )
    parser.add_argument(
        "--prediction-resource-id",
        metavar="ID",
        default=None,
        help=f"prediction resource id for publishing (default: ${ENV_PREDICTION_RESOURCE_ID})",
    )
    add_training_args(parser)
    add_prediction_args(parser)
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]


def _project_name(variant: DemoVariant) -> str:
    # Unique, so that runs never collide on a shared resource and each gets its own folder.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    subject = "cutlery" if variant.detection else "trees"
    return f"cvbulk-demo-{subject}-{stamp}-{secrets.token_hex(2)}"


def _shown(path: Path) -> str:
    """A path as the step's command line gives it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def plan(variant: DemoVariant, project: str, samples: Path, run_dir: Path) -> list[Step]:
    """The quickstart, step by step, as cvbulk command lines.

    Images are read straight from the samples folder; everything written (state files, reports,
    the CSV) goes to ``run_dir``, so the repository's samples stay untouched.
    """
    images = samples / variant.images
    create = ["projects", "create", project, "--description", f"cvbulk demo: {variant.title} quickstart"]
    upload = ["upload", _shown(images), "--project", project, "--exclude", variant.test_folder]
    if variant.detection:
        create.append("--detection")
        upload += ["--labels", _shown(samples / REGIONS_FILE)]
    upload += ["--report", _shown(run_dir / "upload.report.json")]
    predict = [
        "predict", _shown(images / variant.test_folder), "--project", project,
        "--published-name", variant.published_name, "--output", _shown(run_dir / "predictions.csv"),
    ]
    if variant.detection:
        predict.append("--detect")
    return [
        Step("Create a new Custom Vision project", tuple(create)),
        Step("Add tags to the project", ("tags", "create", project, *variant.tags)),
        Step("Upload and tag images", tuple(upload)),
        Step("Train the project (and wait for the iteration)", ("train", "--project", project, "--wait")),
        Step(
            "Publish the current iteration",
            ("publish", "--project", project, "--name", variant.published_name),
        ),
        Step("Test the prediction endpoint (batch scoring of the test folder)", tuple(predict)),
    ]


def cleanup_steps(variant: DemoVariant, project: str) -> list[Step]:
    return [
        Step(
            "Unpublish the iteration",
            ("unpublish", "--project", project, "--name", variant.published_name),
        ),
        Step("Delete the project", ("projects", "delete", project, "--yes")),
    ]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set VISION_* for the steps (as a user would export them) and put everything back after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _command_line(argv: Sequence[str]) -> str:
    return "cvbulk " + " ".join(shlex.quote(part) for part in argv)


def run_step(argv: Sequence[str]) -> int:
    """Parse and run one cvbulk command line with the very code `cvbulk ARGV` runs.

    Exceptions are left to the demo's own error handling, so a failed step ends the demo with the
    step's one-line reason.
    """
    from . import build_parser

    args = build_parser().parse_args(list(argv))
    return int(args.handler(args))


def _out(text: str = "") -> None:
    say(text)


def _run_steps(steps: Sequence[Step], *, first: int, total: int) -> None:
    for number, step in enumerate(steps, start=first):
        _out()
        _out(f"[{number}/{total}] {step.title}")
        _out(f"$ {_command_line(step.argv)}")
        started = time.monotonic()
        code = run_step(step.argv)
        # Keep the step's output (stdout) and its progress lines (stderr) in order in a log.
        sys.stdout.flush()
        sys.stderr.flush()
        if code != 0:
            raise CLIError(
                f"demo stopped at step {number}/{total} ({step.argv[0]}): exit status {code}", code
            )
        _out(f"    ({time.monotonic() - started:.1f} s)")


def _show_connection(settings: dict[str, str], *, emulator: bool) -> None:
    origin = "the emulator's" if emulator else "your"
    _out("The steps read the connection from these variables (keys are never shown):")
    _out(f"  export {ENV_TRAINING_ENDPOINT}={settings[ENV_TRAINING_ENDPOINT]}")
    _out(f"  export {ENV_TRAINING_KEY}=<{origin} training key>")
    _out(f"  export {ENV_PREDICTION_ENDPOINT}={settings[ENV_PREDICTION_ENDPOINT]}")
    _out(f"  export {ENV_PREDICTION_KEY}=<{origin} prediction key>")
    _out(f"  export {ENV_PREDICTION_RESOURCE_ID}={settings[ENV_PREDICTION_RESOURCE_ID]}")


def _azure_settings(args: argparse.Namespace) -> dict[str, str]:
    training = training_connection(args)
    prediction = prediction_connection(args)
    resource_id = prediction_resource_id(args)
    if not resource_id:
        raise CLIError(
            f"no prediction resource id: pass --prediction-resource-id or set {ENV_PREDICTION_RESOURCE_ID}",
            ExitCode.USAGE,
        )
    return {
        ENV_TRAINING_ENDPOINT: training.endpoint,
        ENV_TRAINING_KEY: training.key,
        ENV_PREDICTION_ENDPOINT: prediction.endpoint,
        ENV_PREDICTION_KEY: prediction.key,
        ENV_PREDICTION_RESOURCE_ID: resource_id,
    }


def _wants_emulator(args: argparse.Namespace) -> bool:
    return args.emulator or not (args.training_endpoint or os.environ.get(ENV_TRAINING_ENDPOINT))


def run(args: argparse.Namespace) -> int:
    variant = DETECTION if args.detection else CLASSIFICATION
    samples = find_samples(variant, args.samples)
    # Settings first: a missing key should not leave a half-made working folder behind.
    azure = None if _wants_emulator(args) else _azure_settings(args)
    project = _project_name(variant)
    run_dir = Path(args.workdir).expanduser().resolve() / project
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = plan(variant, project, samples, run_dir)
    if args.cleanup:
        steps += cleanup_steps(variant, project)

    started = time.monotonic()
    _out(f"cvbulk demo: the Custom Vision {variant.title} quickstart, one cvbulk command per step")
    _out(f"  sample images: {samples / variant.images} (Microsoft, MIT licence)")
    _out(f"  working folder: {run_dir}")
    with contextlib.ExitStack() as stack:
        if azure is None:
            settings = stack.enter_context(_embedded_emulator(args))
        else:
            settings = azure
            endpoint = settings[ENV_TRAINING_ENDPOINT]
            _out(f"  service: {endpoint} (given by --endpoint or ${ENV_TRAINING_ENDPOINT})")
        _show_connection(settings, emulator=azure is None)
        stack.enter_context(_environment(settings))
        try:
            _run_steps(steps, first=1, total=len(steps))
        except BaseException:
            if azure is not None:  # the emulator's data goes with it; a real project stays
                _out(f"(project {project!r} may be left in place: cvbulk projects delete {project} --yes)")
            raise

    csv_path = run_dir / "predictions.csv"
    verdict = check_predictions(csv_path, expected=variant.expected, detection=variant.detection)
    _out()
    _out(f"Predictions ({csv_path}):")
    _out(verdict.table)
    if not verdict.ok:
        raise CLIError(f"demo finished but {verdict.reason}", ExitCode.PARTIAL)
    _out()
    _out(f"Done in {time.monotonic() - started:.1f} s: {verdict.reason}.")
    if not args.cleanup and azure is not None:
        _out(f"The project {project!r} is left in place; `cvbulk demo --cleanup` removes it at the end.")
    _out("Next: the same steps one command at a time, against `cvbulk emulator` or Azure: see `cvbulk --help`")
    _out("and `cvbulk COMMAND --help` (each lists its flags, its VISION_* variables and examples).")
    return 0


@contextlib.contextmanager
def _embedded_emulator(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    from ..emulator import EmulatorConfig, EmulatorThread

    data_dir = Path(args.data).expanduser().resolve() if args.data else None
    config = EmulatorConfig(host="127.0.0.1", port=0, data_dir=data_dir)
    with EmulatorThread(config) as emulator:
        remember_secret(emulator.training_key)
        remember_secret(emulator.prediction_key)
        where = f"data in {data_dir}" if data_dir else "data in a temporary folder, removed at the end"
        _out(f"  service: the embedded emulator at {emulator.endpoint} ({where})")
        yield {
            ENV_TRAINING_ENDPOINT: emulator.endpoint,
            ENV_TRAINING_KEY: emulator.training_key,
            ENV_PREDICTION_ENDPOINT: emulator.endpoint,
            ENV_PREDICTION_KEY: emulator.prediction_key,
            ENV_PREDICTION_RESOURCE_ID: emulator.prediction_resource_id,
        }
