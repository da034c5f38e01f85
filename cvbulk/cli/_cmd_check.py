"""``cvbulk check ROOT --project P``: does the project hold exactly the local tree, with the same tags?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import (
    TIERS,
    CLIError,
    ExitCode,
    add_max_concurrency,
    make_pacer,
    print_json,
    training_connection,
)
from ._format import add_project_arg, finish_leaf_parser, leaf_parser, terminal_safe
from ._spinner import spinner_for

EPILOG = """\
examples:
  cvbulk check Images --project trees --exclude Test
  cvbulk check exported/ --project cutlery --labels exported/regions.json --json
  cvbulk check Images --project trees | grep -v '^='      # only what differs
  cvbulk check az://images/flowers --project flowers       # a container, after `cvbulk upload az://...`

Each local image and each project image is listed once, with its outcome:
  =  in both, same tags (and boxes)   *  in both, tags or boxes differ
  -  only local (not uploaded)   +  only in the project (no local file has its bytes)
  !  a local file not compared (unreadable, or one upload would reject; the reason follows)
  .  a file upload skips by rule (not an image by its extension, hidden): never a difference
Images are matched by content: the sha256 of the bytes upload sends (the file's own bytes, or its
fixed version) against the project image's original bytes, downloaded from the service's storage links
(--max-concurrency at a time; they are not paced as training calls).
A container's blobs are each read whole (credentials as for upload: AZURE_STORAGE_CONNECTION_STRING, ...).

exit status: 0 they match (every line is = or .); 1 they differ; 2 usage; 3 fatal (key, project not found).
"""


HELP = "compare a local tree (and its labels) with a project: what is missing where, which tags differ"
DESCRIPTION = (
    "Compare a folder of images (tagged by folder or by a label file, as `cvbulk upload` reads "
    "them) with a project, like `rclone check`: images in both, only local, only in the "
    "project, and tags that differ. Proves a migration or an upload complete."
)


def register(subparsers: Any) -> None:
    parser = leaf_parser(subparsers, "check", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    # a str, not a Path: Path("az://c/p") would turn a container location into the folder "az:/c/p"
    parser.add_argument("root", metavar="ROOT", help="the folder of images (walked recursively), or a container "
                        "location as upload takes it (az://CONTAINER/PREFIX, https://ACCOUNT.blob.core.windows.net/...)")
    add_project_arg(parser)
    parser.add_argument(
        "--labels",
        default="folders",
        metavar="folders|FILE",
        help="where the local tags come from: folders (the first folder level, default) or a .csv "
        "manifest, regions .json or COCO .json, as for upload",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB",
        help="leave out paths matching GLOB (a folder such as Test, a path, or *.png); repeatable",
    )
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default=None,
        help="the resource's pricing tier, for its rate limit (default: $CVBULK_TIER, else S0)",
    )
    pace = parser.add_argument_group("pace")
    add_max_concurrency(pace, 8, "project images downloaded at once (default: 8)")
    finish_leaf_parser(parser, _run)



def _tier(args: argparse.Namespace) -> str:
    import os

    if args.tier:
        return str(args.tier)
    wanted = os.environ.get("CVBULK_TIER", "S0").strip()
    for name in TIERS:
        if name.lower() == wanted.lower():
            return name
    raise CLIError(f"CVBULK_TIER must be one of {', '.join(TIERS)}, not {wanted!r}")


async def _run(args: argparse.Namespace) -> int:
    from ..client import TrainingClient
    from ..pipeline.check import CheckOptions, run_check
    from ..pipeline.labels import LabelFileError
    from ..pipeline.sources import is_container_location

    if not is_container_location(args.root):
        args.root = Path(args.root)
        if not args.root.is_dir():
            raise CLIError(f"ROOT {str(args.root)!r} is not a folder")
    if args.max_concurrency < 1:
        raise CLIError("--max-concurrency must be at least 1")
    connection = training_connection(args)
    options = CheckOptions(
        root=args.root,
        project=args.project,
        labels=args.labels,
        exclude=tuple(args.exclude),
        max_concurrency=args.max_concurrency,
    )
    pacer = make_pacer(_tier(args), None, args.max_concurrency)
    quiet = bool(getattr(args, "quiet", False))
    spinner = spinner_for("check", getattr(args, "progress", "auto"), quiet=quiet)

    def progress(phase: str, done: int, total: int | None) -> None:
        count = f" {done}/{total}" if total is not None else ""
        spinner.update(f"{phase}{count}", key=phase if total is None or done < total else f"{phase} done")

    try:
        async with TrainingClient(connection.endpoint, connection.key, pacer=pacer) as client, spinner:
            result = await run_check(client, options, progress=progress)
    except LabelFileError as exc:
        raise CLIError(str(exc), ExitCode.USAGE) from None
    if args.json:
        print_json(result.to_json())
    else:
        _print_lines(result)
    _print_summary(result, args)
    return int(ExitCode.OK if result.matched else ExitCode.PARTIAL)


def _tags(tags: tuple[str, ...] | None) -> str:
    return ",".join(tags) if tags else "(untagged)"


def _print_lines(result: Any) -> None:
    from ..pipeline.check import MATCH, NOT_COMPARED, ONLY_LOCAL, ONLY_PROJECT, SKIPPED

    for entry in result.entries:
        if entry.outcome == ONLY_PROJECT:
            what = f"image {entry.image_id} [{_tags(entry.project_tags)}]"
        else:
            what = str(entry.path)
        if entry.outcome in (MATCH, ONLY_LOCAL):
            detail = f"  [{_tags(entry.local_tags)}]"
        elif entry.outcome in (NOT_COMPARED, SKIPPED):
            detail = f"  ({entry.reason})"
        elif entry.outcome == ONLY_PROJECT:
            detail = f"  ({entry.reason})" if entry.reason else ""
        elif entry.reason.startswith("regions differ"):
            detail = f"  [{_tags(entry.local_tags)}] ({entry.reason})"
        else:
            detail = f"  local [{_tags(entry.local_tags)}] != project [{_tags(entry.project_tags)}]"
        print(terminal_safe(f"{entry.outcome} {what}{detail}"))
    sys.stdout.flush()


def _print_summary(result: Any, args: argparse.Namespace) -> None:
    counts = result.counts
    parts = [
        f"{counts['match']} match",
        f"{counts['tags_differ']} tags differ",
        f"{counts['only_local']} only local",
        f"{counts['only_in_project']} only in the project",
    ]
    if counts["not_compared"]:
        parts.append(f"{counts['not_compared']} not compared")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped (not images, as upload skips them)")
    verdict = "they match" if result.matched else "they differ"
    name = terminal_safe(result.project_name)
    shown = str(args.root).partition("?")[0]  # a SAS token in a container URL is never shown
    print(f"check {shown!r} against project {name!r}: {', '.join(parts)}: {verdict}", file=sys.stderr)
