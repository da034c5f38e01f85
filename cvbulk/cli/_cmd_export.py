"""``cvbulk export``: a project's images and labels to disk, in a layout ``cvbulk upload`` reads back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

from ._common import (
    add_max_concurrency,
    add_pace_group,
    add_state_args,
    check_concurrency,
    finish,
    finish_job_parser,
    job_parser,
    make_pacer,
    show_report,
    training_connection,
)

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
    parser = job_parser(
        subparsers,
        "export",
        "download a project's images and labels to disk (resumable, at the rate limit)",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="the folder to write into")
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id or exact name")
    parser.add_argument(
        "--format", choices=("folders", "csv", "regions-json", "coco"), default="folders",
        help="layout and label file (default: folders)",
    )
    add_state_args(parser, "state file (default: OUT_DIR/.cvbulk/export.sqlite)")
    pace = add_pace_group(parser, "the resource's pricing tier, for its rate limit (default: S0, or $CVBULK_TIER)")
    pace.add_argument("--tps", type=float, default=None, metavar="N",
                      help="training calls per second, instead of the tier's")
    add_max_concurrency(pace, 16, "at most N downloads in flight (default 16)")
    finish_job_parser(parser, run)


def run(args: argparse.Namespace) -> int:
    return anyio.run(_run, args)


async def _run(args: argparse.Namespace) -> int:
    from ..client import TrainingClient
    from ..pipeline.export import ExportOptions, run_export
    from ._progress import make_progress

    check_concurrency(args.max_concurrency)
    options = ExportOptions(
        project=args.project, out_dir=args.out_dir, format=args.format, state=args.state,
        report=args.report, max_concurrency=args.max_concurrency,
    )
    conn = training_connection(args)
    pacer = make_pacer(args.tier, args.tps, args.max_concurrency)
    client = TrainingClient(conn.endpoint, conn.key, pacer=pacer, max_connections=max(args.max_concurrency, 8))
    progress = make_progress(args, "export")
    async with client, progress:
        result = await run_export(client, options, progress=progress)
    extra = show_report(args, result)
    if extra.get("unchanged"):
        print(f"unchanged since an earlier run: {extra['unchanged']} images", file=sys.stderr)
    if extra.get("multi_tag_images") and options.format == "folders":
        print(f"{extra['multi_tag_images']} images have several tags: {extra.get('label_file')} lists them all",
              file=sys.stderr)
    if extra.get("images_with_tags_without_regions"):
        print(f"{extra['images_with_tags_without_regions']} images have tags without a region, which "
              f"{options.format} cannot carry (export them as csv too)", file=sys.stderr)
    print(f"back into a project: {extra.get('upload_back')}", file=sys.stderr)
    return finish(result)
