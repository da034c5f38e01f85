"""``cvbulk upload`` through the library (``run_upload``) with options the command line does not offer yet.

    python -m benchmarks.cvbulk_child ROOT --project P --state S --report R --tier S0 \
        --max-concurrency 32 --max-inflight-bytes 1073741824

The same client, pacer and pipeline as ``cvbulk upload`` (see cvbulk/cli/_cmd_upload.py), so the figures
differ only by the option set here. Connection from VISION_TRAINING_ENDPOINT / VISION_TRAINING_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio


async def _main(args: argparse.Namespace) -> int:
    from cvbulk.client import Pacer, TrainingClient
    from cvbulk.pipeline.upload import UploadOptions, run_upload

    options = UploadOptions(
        root=args.root, project=args.project, create=True, state=args.state, report=args.report, tier=args.tier,
        max_concurrency=args.max_concurrency, max_inflight_bytes=args.max_inflight_bytes,
    )
    client = TrainingClient(
        os.environ["VISION_TRAINING_ENDPOINT"], os.environ["VISION_TRAINING_KEY"],
        pacer=Pacer.for_tier(args.tier, max_concurrency=args.max_concurrency),
        max_connections=max(args.max_concurrency, 8),
    )
    async with client:
        result = await run_upload(client, options)
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cvbulk_child")
    parser.add_argument("root", type=Path)
    parser.add_argument("--project", required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--tier", default="S0")
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument("--max-inflight-bytes", type=int, default=None)
    return anyio.run(_main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
