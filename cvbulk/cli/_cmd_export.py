"""``cvbulk export``: a project's images and labels to disk, in a layout ``cvbulk upload`` reads back."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

import anyio

from ._common import CLIError, ExitCode, add_common_args, add_training_args, print_json, training_connection

TIERS = ("F0", "S0", "unlimited")

DESCRIPTION = """\
Download every image of a project (tagged and untagged) with its tags and regions into OUT_DIR, in a
layout that `cvbulk upload` reads back. Downloads run concurrently under the resource's rate limit.

Resumable: every image's outcome is written to a state file (OUT_DIR/.cvbulk/export.sqlite) as it
completes; running the same command again fetches only what is missing, moved or changed.
"""

EPILOG = """\
formats (--format):
  folders       OUT_DIR/<tag>/<image id>.jpg; untagged images directly under OUT_DIR. An image with
                several tags goes under its first tag's folder and OUT_DIR/labels.csv lists every
                image with all its tags (upload with --labels OUT_DIR/labels.csv then).
  csv           OUT_DIR/images/<image id>.jpg and OUT_DIR/labels.csv (path,tags; tags joined by ';')
  regions-json  OUT_DIR/images/... and OUT_DIR/regions.json ({file: [{tag,left,top,width,height}]})
  coco          OUT_DIR/images/... and OUT_DIR/coco.json (COCO instances, pixel boxes)

back into a project:
  cvbulk upload OUT_DIR --project NEW --create --untagged [--labels OUT_DIR/<label file>]

exit status: 0 every image exported; 1 some could not be downloaded (the report names each);
2 usage or configuration error; 3 fatal (key, project not found).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="download a project's images and labels to disk (resumable, at the rate limit)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="the folder to write into")
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id or exact name")
    parser.add_argument(
        "--format", choices=("folders", "csv", "regions-json", "coco"), default="folders",
        help="layout and label file (default: folders)",
    )
    add_state_args(parser, "OUT_DIR/.cvbulk/export.sqlite")
    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--tier", choices=TIERS, default=os.environ.get("CVBULK_TIER", "S0"),
        help="the resource's pricing tier, for its rate limit (default: S0, or $CVBULK_TIER)",
    )
    pace.add_argument("--tps", type=float, default=None, metavar="N",
                      help="training calls per second, instead of the tier's")
    pace.add_argument("--max-concurrency", type=int, default=16, metavar="N",
                      help="at most N downloads in flight (default 16)")
    add_output_args(parser, run)


def run(args: argparse.Namespace) -> int:
    return anyio.run(_run, args)


# -- shared with ``cvbulk migrate`` (a resumable job with a state file and a JSON report) ----------------
def add_state_args(parser: argparse.ArgumentParser, default_state: str) -> None:
    parser.add_argument("--state", type=Path, default=None, metavar="FILE",
                        help=f"state file (default: {default_state})")
    parser.add_argument("--report", type=Path, default=None, metavar="FILE",
                        help="JSON report (default: next to the state file)")


def add_output_args(parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int]) -> None:
    """--json, the connection flags and the handler: the tail of every job's parser."""
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_common_args(parser)
    add_training_args(parser)
    parser.set_defaults(handler=handler)


def show_report(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Any]:
    """Print the report (JSON on stdout when asked) and its summary table; returns its ``extra``."""
    from ..pipeline.progress import summary_table

    if args.json:
        print_json(report)
    print(summary_table(report), file=sys.stderr)
    return report.get("extra", {})


def finish(report: dict[str, Any], exit_code: int) -> int:
    """The closing line (where state and report are) and the exit status."""
    extra = report.get("extra", {})
    print(f"state: {extra.get('state_file')}   report: {report.get('report_file')}", file=sys.stderr)
    return int(exit_code) if exit_code else int(ExitCode.OK)


def make_pacer(tier: str, tps: float | None, max_concurrency: int) -> Any:
    """The Pacer of one resource: its tier's rates, or ``tps`` training calls per second."""
    from ..client import ApiGroup, Pacer
    from ..client._ratelimit import TIER_RATES

    if tps is None:
        return Pacer.for_tier(tier, max_concurrency=max_concurrency)
    if tps <= 0:
        raise CLIError("--tps must be more than 0 (use --tier unlimited for no limit)")
    rates = TIER_RATES[tier]
    return Pacer(
        training_tps=tps,
        train_project_tps=rates[ApiGroup.TRAIN_PROJECT],
        prediction_store_tps=rates[ApiGroup.PREDICTION_STORE],
        prediction_nostore_tps=rates[ApiGroup.PREDICTION_NOSTORE],
        max_concurrency=max_concurrency,
    )


async def _run(args: argparse.Namespace) -> int:
    from ..client import TrainingClient
    from ..pipeline.export import ExportOptions, run_export
    from ..pipeline.progress import Progress

    if args.max_concurrency < 1:
        raise CLIError("--max-concurrency must be at least 1")
    options = ExportOptions(
        project=args.project, out_dir=args.out_dir, format=args.format, state=args.state,
        report=args.report, max_concurrency=args.max_concurrency,
    )
    conn = training_connection(args)
    pacer = make_pacer(args.tier, args.tps, args.max_concurrency)
    client = TrainingClient(conn.endpoint, conn.key, pacer=pacer, max_connections=max(args.max_concurrency, 8))
    progress = Progress(label="export", stream=sys.stderr)
    async with client:
        result = await run_export(client, options, progress=progress)
    report = result.report
    extra = show_report(args, report)
    if extra.get("unchanged"):
        print(f"unchanged since an earlier run: {extra['unchanged']} images", file=sys.stderr)
    if extra.get("multi_tag_images") and options.format == "folders":
        print(f"{extra['multi_tag_images']} images have several tags: {extra.get('label_file')} lists them all",
              file=sys.stderr)
    if extra.get("images_with_tags_without_regions"):
        print(f"{extra['images_with_tags_without_regions']} images have tags without a region, which "
              f"{options.format} cannot carry (export them as csv too)", file=sys.stderr)
    print(f"back into a project: {extra.get('upload_back')}", file=sys.stderr)
    return finish(report, result.exit_code)
