"""``cvbulk export``: a project's images and labels to disk, in a layout ``cvbulk upload`` reads back."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from ._common import (
    CLIError,
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
Download every image of a project (tagged and untagged) with its tags, regions and metadata into OUT (a
folder) or straight into a blob container (--to az://container/prefix), in a format that `cvbulk upload
--labels` reads back, with model.json: every iteration and its precision / recall / AP per tag.

Verified: each download must be a readable image of the size the service reports; an image link that
expired is renewed (GetImagesByIds) and tried again. At the end the images per tag, the untagged images
and the total are checked against the service's counts: any difference fails the run (exit status 1).

Resumable: every image's outcome is written to a state file as it completes (OUT/.cvbulk/export.sqlite;
for a container ./.cvbulk/export-<container>-<hash>.sqlite, on this machine, never holding a key or SAS);
running the same command again downloads only what is missing or moved.
"""

EPILOG = """\
formats (--format):
  folders       OUT/<tag>/<image id>.jpg; untagged images directly under OUT; labels.csv lists every
                image with all its tags; cvbulk-folders.json maps folders whose names had to be made safe
  csv           OUT/images/<id>.jpg and OUT/labels.csv (path,tags,metadata; tags joined by ';')
  regions-json  OUT/images/... and OUT/regions.json ({file: [{tag,left,top,width,height}]}) (detection)
  coco          OUT/images/... and OUT/coco.json (pixel boxes, image sizes, dates, metadata)
  yolo          OUT/images/..., OUT/labels/<id>.txt and OUT/data.yaml (detection)
  automl        OUT/images/..., OUT/train/train.jsonl + OUT/train/MLTable (Azure ML AutoML for images),
                with --validation-split also OUT/validation/...

untagged images (no tag, no region): always downloaded; folders: directly under OUT; csv: an empty tags
cell; coco: an image without annotations; yolo: an empty label file; regions-json: []; automl: left out
(AutoML requires a label) unless --include-untagged for multi-label / detection ("label": []).

back into a project:
  cvbulk upload OUT --project NEW --create --untagged [--labels OUT/<label file>]

exit status: 0 every image exported and the counts match the service; 1 some could not be downloaded
or the counts differ (the report names each); 2 usage or configuration error; 3 fatal (key, project
not found, a container that cannot be written).
"""


HELP = "download a project's images and labels to disk (resumable, at the rate limit)"


def register(subparsers: Any) -> None:
    parser = job_parser(subparsers, "export", HELP, DESCRIPTION, EPILOG)
    parser.add_argument("out_dir", metavar="OUT", nargs="?", default=None,
                        help="the folder (or container location) to write into")
    parser.add_argument("--to", metavar="LOCATION", default=None,
                        help="write into a blob container instead: az://container/prefix or "
                             "https://account.blob.core.windows.net/container/prefix (credentials from "
                             "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT + _KEY / _SAS_TOKEN, or "
                             "DefaultAzureCredential)")
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id or exact name")
    parser.add_argument(
        "--format", choices=("folders", "csv", "regions-json", "coco", "yolo", "automl"), default="folders",
        help="layout and label files (default: folders)",
    )
    parser.add_argument("--image-url-prefix", metavar="URL", default=None,
                        help="automl: image_url = URL + the image's path (e.g. azureml://subscriptions/<sub>/"
                             "resourcegroups/<rg>/workspaces/<ws>/datastores/<ds>/paths/<folder>/); "
                             "default: paths relative to OUT")
    parser.add_argument("--validation-split", type=float, default=0.0, metavar="F",
                        help="automl: this share of the images (0 <= F < 1, chosen by a hash of the image id, "
                             "the same on every run) goes to validation/validation.jsonl")
    parser.add_argument("--include-untagged", action="store_true",
                        help="automl, multi-label and detection: write untagged images with \"label\": []")
    add_state_args(parser, "state file (default: OUT/.cvbulk/export.sqlite)")
    pace = add_pace_group(parser, "the resource's pricing tier, for its rate limit (default: S0, or $CVBULK_TIER)")
    pace.add_argument("--tps", type=float, default=None, metavar="N",
                      help="training calls per second, instead of the tier's")
    add_max_concurrency(pace, 16, "at most N downloads in flight (default 16)")
    finish_job_parser(parser, run)


def _automl_only(args: argparse.Namespace) -> None:
    """A flag that shapes only the AutoML files, given with another format, is a mistake to say, not ignore."""
    if args.format == "automl":
        return
    given = [flag for flag, on in (("--validation-split", args.validation_split != 0.0),
                                   ("--image-url-prefix", args.image_url_prefix is not None)) if on]
    if given:
        raise CLIError(f"{' and '.join(given)} applies to --format automl only (--format is {args.format}): add "
                       f"--format automl, or leave {'them' if len(given) > 1 else 'it'} out")


def _automl_paths_note(args: argparse.Namespace, extra: dict) -> None:
    """AutoML reads image_url as a full datastore path: in a container, relative ones train nothing."""
    if args.format != "automl" or args.image_url_prefix or extra.get("destination") != "container":
        return
    from ..pipeline.formats.automl import datastore_prefix_hint

    hint = datastore_prefix_hint(args.to if args.to is not None else args.out_dir)
    if hint:
        print(f"note: image_url in the JSONL is relative to the export root, which AutoML cannot read; for "
              f"training from this container, run the same command again with {hint} (nothing is downloaded "
              f"again; the JSONL is rewritten)", file=sys.stderr)


def empty_tables(extra: dict) -> list[str]:
    """A warning for each AutoML table that holds no image (AutoML cannot train or validate on an empty one):
    a small project with --validation-split, or one whose images are all untagged."""
    rows = extra.get("label_rows") or {}
    return [f"warning: {name} holds no image: AutoML cannot use an empty table (a larger --validation-split, or "
            f"--include-untagged for multi-label / detection, may fill it)"
            for name, n in rows.items() if n == 0 and (extra.get("images_in_project") or 0) > 0]


def run(args: argparse.Namespace) -> int:
    return anyio.run(_run, args)


async def _run(args: argparse.Namespace) -> int:
    from ..client import TrainingClient
    from ..pipeline.export import ExportOptions, run_export
    from ._progress import make_progress

    check_concurrency(args.max_concurrency)
    if (args.out_dir is None) == (args.to is None):
        raise CLIError("give either OUT (a folder) or --to LOCATION (a container), not both, not neither")
    _automl_only(args)
    options = ExportOptions(
        project=args.project, out_dir=args.to if args.to is not None else args.out_dir, format=args.format,
        state=args.state, report=args.report, max_concurrency=args.max_concurrency,
        image_url_prefix=args.image_url_prefix, validation_split=args.validation_split,
        include_untagged=args.include_untagged,
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
    if extra.get("not_in_label_files"):
        first = extra["not_in_label_files"][0]
        print(f"not in the label files: {len(extra['not_in_label_files'])} images (e.g. {first['image_id']}: "
              f"{first['reason']}; the report lists each)", file=sys.stderr)
    if extra.get("labels_not_carried"):
        first = extra["labels_not_carried"][0]
        print(f"labels not in the label files: {len(extra['labels_not_carried'])} images (e.g. {first['image_id']}: "
              f"{first['reason']}; the report lists each)", file=sys.stderr)
    if extra.get("other_images"):
        others = extra["other_images"]
        print(f"note: {len(others)} images in {extra.get('out_dir')} were not written by this export (e.g. "
              f"{others[0]}): uploading it back with --untagged sends them too; the report lists each",
              file=sys.stderr)
    if extra.get("removed"):
        print(f"removed {len(extra['removed'])} files of images deleted from the project since an earlier export "
              f"(the report lists each)", file=sys.stderr)
    if extra.get("left_in_destination"):
        left = extra["left_in_destination"]
        print(f"warning: {len(left)} files of images deleted from the project since an earlier export are still in "
              f"the container (e.g. {left[0]['file']}): delete them there before uploading it back (the report "
              f"lists each)", file=sys.stderr)
    check = extra.get("count_check") or {}
    if check.get("line"):
        print(f"cvbulk: error: {check['line']}", file=sys.stderr)
    for line in empty_tables(extra):
        print(line, file=sys.stderr)
    _automl_paths_note(args, extra)
    # for YOLO in a container: why upload cannot read it from there, and the download that can (the pipeline's words)
    print(f"back into a project: {extra.get('upload_back')}", file=sys.stderr)
    return finish(result)
