"""``cvbulk predict``: score a folder tree with a published iteration, to CSV or JSONL, resumably."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from ._common import (
    ENV_TRAINING_KEY,
    add_max_concurrency,
    add_pace_group,
    add_state_args,
    finish,
    finish_job_parser,
    job_parser,
    make_pacer,
    prediction_connection,
    settled_heap,
    show_report,
    training_connection,
)
from ._source_args import add_source_args, job_options, open_source

DESCRIPTION = """\
Score every image under ROOT with a published iteration, one request per image, many in flight
at the prediction rate limit of the tier. Results go to the output as they arrive: a CSV (one row
per image: path, status, reason, top tag, top probability, then every tag's probability; with
--detect one row per box) or, for a .jsonl file, one JSON object per image.

Resumable: running the same command again scores only the images that have no row yet and appends
theirs, so the output never holds a path twice, even after the run was killed.
"""

EPILOG = """\
examples:
  cvbulk predict ./dump --project birds --published-name prod --output birds.csv
  cvbulk predict ./dump --project 0f8fad5b-... --published-name prod --output out.jsonl --top 3
  cvbulk predict ./shelves --project cutlery --published-name detect --detect --threshold 0.5
  cvbulk predict az://dumps/2026-11-30 --project birds --published-name prod -o night.csv

ROOT may be a blob container location (az://CONTAINER/PREFIX, https://ACCOUNT.blob.core.windows.net/
CONTAINER/PREFIX): images that pass the header check (one ranged read of at most 64 KB) are scored by a
read-only SAS URL (ClassifyImageUrl / DetectImageUrl), so no image byte passes through cvbulk; the
path column holds the blob's name under the prefix, never a URL. Credentials as for upload
(AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN, ...).

PROJECT is a project id, or its exact name when the training endpoint and key are given too.
The CSV's tag columns are every tag of the project (with training credentials), else the tags of
the first answer; an existing output keeps its columns. Bad input (not an image, cannot be fixed
under 4 MB) gets a row with the reason and exit status 1; so does an image the service refused.
Images the service could not score (it kept failing) get no row and are retried by the next run.
"""


HELP = "score a folder tree with a published iteration, to CSV/JSONL (resumable)"


def register(subparsers: Any) -> None:
    parser = job_parser(subparsers, "predict", HELP, DESCRIPTION, EPILOG)
    add_source_args(parser)
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id (or exact name)")
    parser.add_argument(
        "--published-name", required=True, metavar="NAME", help="the name the iteration was published as"
    )
    parser.add_argument(
        "--detect", action="store_true", help="object detection (DetectImage): one CSV row per box"
    )
    parser.add_argument(
        "--store",
        action="store_true",
        help="keep the images in the project's predictions (default: no store, which has the higher rate limit)",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        default=Path("predictions.csv"),
        metavar="FILE",
        help="FILE.csv or FILE.jsonl (default: predictions.csv); appended to when it exists",
    )
    parser.add_argument(
        "--include-hidden", action="store_true",
        help="also score hidden files and folders (names starting with '.'; cvbulk's own .cvbulk/ never)",
    )
    parser.add_argument(
        "--top", type=int, default=None, metavar="K", help="keep the K best predictions (JSONL and --detect rows)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="drop predictions under probability P (JSONL and --detect rows; the CSV keeps every tag column)",
    )
    add_state_args(
        parser, "state file (default: OUTPUT.state)", "write the JSON report there (default: OUTPUT.report.json)"
    )
    pace = add_pace_group(
        parser,
        "the resource's pricing tier, which sets the rate limits (default: S0, 20 predictions/s "
        "without store, 10 with)",
    )
    pace.add_argument(
        "--tps", type=float, default=None, metavar="N", help="predictions per second, instead of the tier's"
    )
    add_max_concurrency(pace, 32, "at most N requests in flight (default 32; fewer while the service pushes back)")
    finish_job_parser(parser, run, prediction=True)


def run(args: argparse.Namespace) -> int:
    from ..pipeline._naps import napping_loop

    # a loop whose wake-ups a paced run can coalesce (``pipeline._naps``)
    return anyio.run(_run, args, backend_options={"loop_factory": napping_loop})


def _options(args: argparse.Namespace) -> Any:
    from ..pipeline.predict import PredictOptions

    return job_options(PredictOptions, args)


def _wants_training(args: argparse.Namespace) -> bool:
    """Training credentials are optional here: used when a training key is given at all."""
    return bool(getattr(args, "training_key", None) or os.environ.get(ENV_TRAINING_KEY))


async def _run(args: argparse.Namespace) -> int:
    from ..client import Pacer, PredictionClient, TrainingClient
    from ..pipeline.engine import ProgressSink
    from ..pipeline.predict import run_predict
    from ._progress import make_progress

    options = _options(args)
    prediction_conn = prediction_connection(args)  # checked before any request is made
    training_conn = training_connection(args) if _wants_training(args) else None

    async with AsyncExitStack() as stack:
        prediction = await stack.enter_async_context(
            PredictionClient(
                prediction_conn.endpoint,
                prediction_conn.key,
                pacer=make_pacer(args.tier, args.tps, args.max_concurrency, prediction=True),
                max_connections=max(args.max_concurrency, 8),
            )
        )
        training = None
        if training_conn is not None:
            # A few calls only (project, domain, tags), paced at the tier's training rate.
            training = await stack.enter_async_context(
                TrainingClient(training_conn.endpoint, training_conn.key, pacer=Pacer.for_tier(args.tier))
            )
        source = await stack.enter_async_context(open_source(args))
        if source is not None:
            options = dataclasses.replace(options, source=source)
        progress: ProgressSink = await stack.enter_async_context(make_progress(args, "predict"))
        with settled_heap():
            result = await run_predict(prediction, training, options, progress=progress)

    show_report(args, result, "predict")
    print(f"output: {result.output}", file=sys.stderr)
    return finish(result, quiet=getattr(args, "quiet", False))
