"""``cvbulk upload``: a labelled image tree into a project, at the rate limit, resumably."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import anyio

from ._common import (
    add_max_concurrency,
    add_pace_group,
    add_state_args,
    failure_summary,
    finish,
    finish_job_parser,
    job_parser,
    make_pacer,
    print_json,
    print_table,
    result_status,
    settled_heap,
    show_report,
    training_connection,
)
from ._source_args import add_source_args, job_options, open_source

if TYPE_CHECKING:
    from ..pipeline.results import UploadResult

DESCRIPTION = """\
Upload every image under ROOT into a Custom Vision project, tagged from a label source, as fast as
the resource's rate limit allows. Images are checked on the way: acceptable ones go byte for byte,
fixable ones are fixed (downscaled, converted to jpg/png, re-encoded under 6 MB) and say so in the
report, the rest are rejected with a reason. Images sharing a tag set go in multipart batches of up
to 64; images with regions or their own tags in JSON batches.

Resumable: every file's outcome is written to a state file as each batch completes. Running the
same command again sends only what is not done yet (and what failed for a transient reason);
a run killed at any moment loses nothing and creates no duplicate image.
"""

EPILOG = """\
label sources (--labels):
  folders         the first folder level under ROOT is the tag (Images/Hemlock/x.jpg -> Hemlock)
  FILE.csv        a manifest: path,tags (several tags separated by ';' for multilabel projects)
  FILE.json       regions, {"file.jpg": [{"tag", "left", "top", "width", "height"}, ...]}
                  (normalised), or COCO instances (pixel boxes): an object-detection project
files with no label are reported as skipped, unless --untagged uploads them untagged.

state and report:
  by default in .cvbulk/ under the current directory: upload-<PROJECT>-<hash>.sqlite (the hash is
  of ROOT and the project's id, so the same upload finds its state again whether PROJECT is given
  as a name or an id) and <that>.report.json next to it.
  With --report FILE only, the state goes next to FILE; with --state FILE only, the report goes to
  FILE's name with .report.json.

examples:
  cvbulk upload Images --project trees --create --exclude Test
  cvbulk upload ObjectDetection/Images --project cutlery --create --labels od_regions.json
  cvbulk upload ./photos --project 0f8fad5b-... --labels manifest.csv --tier F0 --dry-run
  cvbulk upload az://images/flowers --project flowers --create       (a container: see below)

images in Azure Blob Storage (ROOT = az://CONTAINER/PREFIX, https://ACCOUNT.blob.core.windows.net/
CONTAINER/PREFIX, or Azurite's http://127.0.0.1:10000/devstoreaccount1/CONTAINER/PREFIX):
  credentials from AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY or
  AZURE_STORAGE_SAS_TOKEN, a SAS token in the URL, or DefaultAzureCredential (cvbulk[identity]).
  The first name level under the prefix is the tag (virtual folders); a label FILE names blobs by
  their path under the prefix, and may itself be a blob (--labels az://c/p/labels.csv, or a name
  found under the prefix when not on this machine). Images that pass the header check (one
  ranged read of at most 64 KB) go as read-only SAS URLs valid 1 h (--via url|auto), so no image
  byte passes through cvbulk; images that need a fix are downloaded, fixed and sent as data.
  A blob replaced since an earlier run (new ETag) is sent again; an unchanged one is not.

exit status: 0 every image uploaded (or a duplicate, or skipped); 1 finished but some were rejected
or failed (the report names each); 2 usage or configuration error; 3 fatal (key, project not found).
"""


HELP = "upload a labelled image tree into a project (resumable, at the rate limit)"


def register(subparsers: Any) -> None:
    parser = job_parser(subparsers, "upload", HELP, DESCRIPTION, EPILOG)
    add_source_args(parser)
    parser.add_argument("--project", required=True, metavar="PROJECT", help="project id or exact name")
    parser.add_argument(
        "--create", action="store_true", help="create the project when PROJECT names none"
    )
    parser.add_argument(
        "--labels", default="folders", metavar="folders|FILE",
        help="where tags come from: 'folders' (default), a .csv manifest, a regions or COCO .json",
    )
    parser.add_argument(
        "--untagged", action="store_true", help="upload files with no label untagged (default: skip them)"
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB",
        help="leave out paths matching GLOB (a folder such as Test, a path, or *.png); repeatable",
    )
    parser.add_argument(
        "--include-hidden", action="store_true",
        help="also take hidden files and folders (names starting with '.'; cvbulk's own .cvbulk/ never)",
    )
    parser.add_argument(
        "--replace-changed", action="store_true",
        help="a file changed since it was uploaded: delete its old image once the new one is in "
        "(default: the old image stays, and the report says so)",
    )
    add_state_args(parser, "state file (see below)", "JSON report (see below)")
    parser.add_argument(
        "--dry-run", action="store_true",
        help="scan, check and batch, then print what would be sent (per tag, fixes, rejects); send nothing",
    )
    create = parser.add_argument_group("with --create")
    create.add_argument("--domain", metavar="NAME|ID", default=None,
                        help="domain by name or id (default General; object detection when labels have regions)")
    create.add_argument("--classification-type", choices=("Multiclass", "Multilabel"), default=None,
                        help="for a classification project (default: the service's, Multilabel)")
    pace = add_pace_group(
        parser,
        "the resource's pricing tier: its rate limit (F0 2/s, S0 10/s) and tags per project "
        "(default: S0, or $CVBULK_TIER)",
    )
    pace.add_argument("--tps", type=float, default=None, metavar="N",
                      help="training calls per second, instead of the tier's")
    add_max_concurrency(pace, 32, "at most N batches in flight (default 32; fewer while the service pushes back)")
    pace.add_argument(
        "--max-inflight-bytes",
        type=int,
        default=None,
        metavar="N",
        help="bytes of batches held in flight at once (default 768 MB; bounds memory with large images)",
    )
    pace.add_argument(
        "--batch-bytes", type=int, default=None, metavar="N",
        help="byte budget per request (default 32 MB; the service times out near 50 MB)",
    )
    finish_job_parser(parser, run)


def run(args: argparse.Namespace) -> int:
    return anyio.run(_run, args)


def _options(args: argparse.Namespace) -> Any:
    from ..pipeline.batch import DEFAULT_BATCH_BYTES
    from ..pipeline.upload import UploadOptions

    return job_options(
        UploadOptions, args, exclude=tuple(args.exclude), batch_bytes=args.batch_bytes or DEFAULT_BATCH_BYTES
    )


async def _run(args: argparse.Namespace) -> int:
    from ..client import TrainingClient
    from ..pipeline._blob_labels import label_file_here
    from ..pipeline.upload import run_upload
    from ._progress import make_progress

    options = _options(args)
    conn = training_connection(args)
    pacer = make_pacer(args.tier, args.tps, args.max_concurrency)
    client = TrainingClient(conn.endpoint, conn.key, pacer=pacer, max_connections=max(args.max_concurrency, 8))
    progress = make_progress(args, "dry run" if options.dry_run else "upload")
    async with client, open_source(args) as source, progress:
        if source is not None:
            options.source = source
        # a label file in a container is read from a local copy, made here once
        async with label_file_here(options.labels, root_source=source) as labels:
            options.labels = labels
            with settled_heap():
                result = await run_upload(client, options, progress=progress)
    if options.dry_run and args.json:
        print_json(result.report)
    elif options.dry_run:
        _print_dry_run(result)
    else:
        show_report(args, result, "upload")  # "already done" counts what earlier runs finished
    if result.report_file is not None:  # a dry run writes none
        return finish(result, quiet=getattr(args, "quiet", False))
    reason = failure_summary(result)
    if reason is not None:  # the reason for exit status 1, in one line
        print(reason, file=sys.stderr)
    return result_status(result)


def _print_dry_run(result: UploadResult) -> None:
    extra = result.summary
    would = extra.get("would_send", {})
    project = extra.get("project", {})
    name = project.get("name")
    head = f"would create project {name!r}" if project.get("would_create") else f"project {name!r}"
    print(f"dry run: {head}; nothing was sent")
    per_tag = would.get("per_tag") or []
    if per_tag:
        print_table([(t["tag"], t["images"]) for t in per_tag], ("tag", "images"))
    print(f"\nimages to send: {would.get('images', 0)}  ({would.get('bytes', 0) / 1e6:.1f} MB)")
    if would.get("tags_to_create"):
        print("tags to create: " + ", ".join(would["tags_to_create"]))
    if extra.get("fixes"):
        print()
        print_table([(f["fix"], f["images"]) for f in extra["fixes"]], ("fix to apply", "images"))
    failures = result.failures
    if failures:
        print()
        print_table([(f["path"], f["reason"]) for f in failures], ("rejected", "reason"))
