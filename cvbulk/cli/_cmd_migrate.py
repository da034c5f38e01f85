"""``cvbulk migrate``: copy a project (settings, tags, images, regions, metadata) into another project,
possibly on another resource, at both sides' rate limits, resumably."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import anyio

from ..client._errors import AuthenticationError
from ._common import (
    ENV_TRAINING_ENDPOINT,
    ENV_TRAINING_KEY,
    TIERS,
    CLIError,
    Connection,
    ExitCode,
    add_max_concurrency,
    add_pace_group,
    add_state_args,
    check_concurrency,
    check_endpoint,
    finish,
    finish_job_parser,
    job_parser,
    make_pacer,
    print_table,
    remember_secret,
    show_report,
    tier_name,
    training_connection,
)

ENV_TARGET_ENDPOINT = "VISION_TARGET_TRAINING_ENDPOINT"
ENV_TARGET_KEY = "VISION_TARGET_TRAINING_KEY"

DESCRIPTION = """\
Copy a project into another one: its settings (domain, classification type; when --create makes the
target), its tags (matched by name, each created once), and every image with its tags, regions and
metadata. The target may be on another resource (another region, another subscription).

Images go by URL when the target can fetch the source's image URIs (CreateImagesFromUrls, 64 per
request), else they are downloaded from the source and re-uploaded byte for byte. --by auto (the
default) tries one request by URL and falls back to download and upload when the target cannot fetch.

Resumable: every image's outcome, with its id on the target, is written to a state file as each request
completes; the same command again sends only what is missing, and a run killed at any moment creates no
duplicate. At the end the images per tag are counted on both sides; any difference is reported and
makes the exit status 1.
"""

EPILOG = f"""\
connections:
  source: --endpoint/--key or $VISION_TRAINING_ENDPOINT/$VISION_TRAINING_KEY
  target: --to-endpoint/--to-key or ${ENV_TARGET_ENDPOINT}/${ENV_TARGET_KEY}
          (default: the source's resource, for a copy within one resource)

examples:
  cvbulk migrate --from-project trees --to-project trees --create \\
      --to-endpoint https://westeurope.api.cognitive.microsoft.com
  cvbulk migrate --from-project 0f8fad5b-... --to-project trees-copy --create --by upload

exit status: 0 everything copied and the counts agree; 1 some images failed or the counts differ
(the report names each); 2 usage or configuration error; 3 fatal (key, project not found).
"""


HELP = "copy a project's tags, images and regions into another project or resource (resumable)"


def register(subparsers: Any) -> None:
    parser = job_parser(subparsers, "migrate", HELP, DESCRIPTION, EPILOG)
    parser.add_argument("--from-project", required=True, metavar="PROJECT", help="source project id or exact name")
    parser.add_argument("--to-project", required=True, metavar="PROJECT", help="target project id or exact name")
    parser.add_argument("--create", action="store_true",
                        help="create the target project (with the source's settings) when PROJECT names none")
    parser.add_argument("--by", choices=("auto", "url", "upload"), default="auto",
                        help="how images travel: by URL, by download and upload, or auto (default)")
    add_state_args(parser, "state file (default: .cvbulk/migrate-<hash>.sqlite under the current folder)")
    target = parser.add_argument_group("target resource")
    target.add_argument("--to-endpoint", metavar="URL", help=f"target training endpoint (default: ${ENV_TARGET_ENDPOINT}, "
                        "else the source's)")
    target.add_argument("--to-key", metavar="KEY", help=f"target training key (default: ${ENV_TARGET_KEY}, else the source's)")
    pace = add_pace_group(parser, "the source resource's pricing tier (default: S0, or $CVBULK_TIER)")
    pace.add_argument("--to-tier", type=tier_name, choices=TIERS, default=None, help="the target's pricing tier (default: --tier)")
    pace.add_argument("--tps", type=float, default=None, metavar="N", help="source training calls per second")
    pace.add_argument("--to-tps", type=float, default=None, metavar="N", help="target training calls per second")
    add_max_concurrency(pace, 8, "at most N requests in flight on the target (default 8)")
    pace.add_argument("--batch-bytes", type=int, default=None, metavar="N",
                      help="byte budget per upload request (default 32 MB)")
    finish_job_parser(parser, run)


def run(args: argparse.Namespace) -> int:
    return anyio.run(_run, args)


def target_connection(args: argparse.Namespace, source: Connection) -> Connection:
    endpoint = (args.to_endpoint or os.environ.get(ENV_TARGET_ENDPOINT) or "").strip()
    key = (args.to_key or os.environ.get(ENV_TARGET_KEY) or "").strip()
    remember_secret(key)
    if not endpoint and not key:
        return source  # a copy within one resource
    if not endpoint:
        endpoint = source.endpoint
    if not key:
        if endpoint.rstrip("/") != source.endpoint:
            raise CLIError(f"no target key: pass --to-key or set {ENV_TARGET_KEY}")
        key = source.key
    return Connection(check_endpoint(endpoint), key)


async def _refused(source: Any, exc: Any, same: bool) -> str:
    """Which of the two keys was refused, and what to fix (a probe of the source says which side it was)."""
    from ..client import CustomVisionError

    call = getattr(exc, "operation", None) or "HTTP 401"
    source_fix = f"the source refused the training key ({call}): check {ENV_TRAINING_KEY} (or --key)"
    if same:
        return f"{source_fix} and that the endpoint is the training resource's"
    try:
        await source.get_projects()
    except AuthenticationError:
        return f"{source_fix} and {ENV_TRAINING_ENDPOINT} (or --endpoint)"
    except CustomVisionError:
        pass
    return (f"the target refused the training key ({call}): check {ENV_TARGET_KEY} (or --to-key) and "
            f"{ENV_TARGET_ENDPOINT} (or --to-endpoint)")


async def _run(args: argparse.Namespace) -> int:
    from ..client import TrainingClient
    from ..pipeline.batch import DEFAULT_BATCH_BYTES
    from ..pipeline.migrate import MigrateOptions, run_migrate
    from ._progress import make_progress

    check_concurrency(args.max_concurrency)
    options = MigrateOptions(
        from_project=args.from_project, to_project=args.to_project, create=args.create, by=args.by,
        state=args.state, report=args.report, max_concurrency=args.max_concurrency,
        batch_bytes=args.batch_bytes or DEFAULT_BATCH_BYTES,
    )
    source_conn = training_connection(args)
    target_conn = target_connection(args, source_conn)
    # One Pacer per resource: the service counts each resource's requests, so one resource on both
    # sides shares one.
    downloads = max(args.max_concurrency, 16)
    source_pacer = make_pacer(args.tier, args.tps, downloads)
    same = (target_conn.endpoint, target_conn.key) == (source_conn.endpoint, source_conn.key)
    target_pacer = source_pacer if same else make_pacer(args.to_tier or args.tier, args.to_tps, args.max_concurrency)
    source = TrainingClient(source_conn.endpoint, source_conn.key, pacer=source_pacer, max_connections=downloads)
    target = TrainingClient(target_conn.endpoint, target_conn.key, pacer=target_pacer,
                            max_connections=max(args.max_concurrency, 8))
    progress = make_progress(args, "migrate")
    async with source, target, progress:
        try:
            result = await run_migrate(source, target, options, progress=progress)
        except AuthenticationError as exc:
            raise CLIError(await _refused(source, exc, same), ExitCode.FATAL) from None
    extra = show_report(args, result)
    comparison = result.comparison
    rows = [(name, c["source"], c["target"], "" if c["source"] == c["target"] else "DIFFERS")
            for name, c in (comparison.get("tags") or {}).items()]
    for label in ("untagged", "images"):
        c = comparison.get(label) or {}
        rows.append((f"({label})", c.get("source"), c.get("target"),
                     "" if c.get("source") == c.get("target") else "DIFFERS"))
    print(file=sys.stderr)
    print_table(rows, ("tag", "source", "target", ""), file=sys.stderr)
    if extra.get("unchanged"):
        print(f"already migrated by an earlier run: {extra['unchanged']} images", file=sys.stderr)
    return finish(result)
