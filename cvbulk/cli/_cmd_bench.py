"""``cvbulk bench``: how fast your own resource (or the emulator) takes uploads and predictions."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from ._common import (
    TIERS,
    CLIError,
    ExitCode,
    add_common_args,
    add_prediction_args,
    add_training_args,
    check_tier,
    env_tier,
    prediction_connection,
    prediction_resource_id,
    print_json,
    print_table,
    tier_name,
    training_connection,
)

__all__ = ["register", "run"]

DESCRIPTION = """\
Measure what a Custom Vision resource gives: a throw-away project is created, N synthetic images are
uploaded through cvbulk's pipeline (and, with --predict, a model is trained, published and scores them),
then everything created is deleted (unless --keep). Prints images/s, MB/s, latency percentiles, the 429s
seen and the concurrency the adaptive limiter settled on; writes the same as JSON.

--emulator runs the measurement against a local emulator instead (own event loop in a thread), playing
--tier with a latency model of the real service.
"""

EPILOG = """\
examples:
  cvbulk bench --emulator --images 200 --predict
  VISION_TRAINING_ENDPOINT=... VISION_TRAINING_KEY=... cvbulk bench --images 640
  cvbulk bench --predict --prediction-resource-id /subscriptions/.../accounts/my-prediction

the full comparison with the official SDK and the ceiling is `python -m benchmarks` (see benchmarks/README.md).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure upload and prediction speed on your resource (or the emulator)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--emulator", action="store_true", help="measure a local emulator instead of a resource")
    parser.add_argument("--images", type=int, default=640, metavar="N", help="synthetic images to send (default 640)")
    parser.add_argument("--predict", action="store_true", help="also train, publish and score the images")
    parser.add_argument("--keep", action="store_true", help="keep the project (default: delete what was created)")
    parser.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                        help="JSON result (default: .cvbulk/bench-<time>.json)")
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout instead of a table")
    pace = parser.add_argument_group("pace")
    pace.add_argument("--tier", type=tier_name, choices=TIERS, default=env_tier("S0"),
                      help="the resource's pricing tier (default: S0, or $CVBULK_TIER); with --emulator, the tier it plays")
    pace.add_argument("--max-concurrency", type=int, default=32, metavar="N",
                      help="requests in flight at most (default 32; the adaptive limiter may settle lower)")
    emu = parser.add_argument_group("with --emulator")
    emu.add_argument("--latency", default="0.3,0.01,0.05", metavar="REQ,IMG,MB",
                     help="seconds per request, per image, per MB the emulator adds (default 0.3,0.01,0.05; 0 for none)")
    parser.add_argument("--prediction-resource-id", metavar="ID", default=None,
                        help="resource id to publish to with --predict (default: $VISION_PREDICTION_RESOURCE_ID)")
    add_common_args(parser)
    add_training_args(parser)
    add_prediction_args(parser)
    parser.set_defaults(handler=run)


def _latency(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(",")] if text.strip() not in ("", "0") else [0.0]
    except ValueError:
        raise CLIError(f"--latency takes REQ,IMG,MB seconds, e.g. 0.3,0.01,0.05 (got {text!r})") from None
    parts += [0.0] * (3 - len(parts))
    if len(parts) != 3 or any(p < 0 for p in parts):
        raise CLIError(f"--latency takes three non-negative numbers (got {text!r})")
    return parts[0], parts[1], parts[2]


def run(args: argparse.Namespace) -> int:
    if args.images < 1:
        raise CLIError("--images must be at least 1")
    if args.max_concurrency < 1:
        raise CLIError("--max-concurrency must be at least 1")
    check_tier(args.tier)
    if args.emulator:
        from ..emulator import EmulatorConfig, EmulatorThread, Latency

        per_request, per_image, per_mb = _latency(args.latency)
        config = EmulatorConfig(tier=args.tier, latency=Latency(per_request, per_image, per_mb))
        with EmulatorThread(config) as emu:
            result = anyio.run(_measure, args, (emu.endpoint, emu.training_key),
                               (emu.endpoint, emu.prediction_key), emu.prediction_resource_id)
        result["emulator"] = {"tier": args.tier, "latency_s": {"per_request": per_request, "per_image": per_image,
                                                               "per_mb": per_mb}}
    else:
        t = training_connection(args)
        p = prediction_connection(args) if args.predict else None
        rid = args.prediction_resource_id or prediction_resource_id(args)
        result = anyio.run(_measure, args, (t.endpoint, t.key), (p.endpoint, p.key) if p else None, rid)
    output = args.output or Path.cwd() / ".cvbulk" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    if args.json:
        print_json(result)
    else:
        _print(result)
        print(f"\nresult: {output}", file=sys.stderr)
    failed = sum((result.get(k) or {}).get("failed", 0) for k in ("upload", "predict"))
    return int(ExitCode.PARTIAL if failed else ExitCode.OK)


async def _measure(args: argparse.Namespace, training: tuple[str, str], prediction: tuple[str, str] | None,
                   resource_id: str | None) -> dict[str, Any]:
    from ..client import Pacer, PredictionClient, TrainingClient
    from ..pipeline.bench import BenchOptions, run_bench

    options = BenchOptions(images=args.images, predict=args.predict, keep=args.keep, tier=args.tier,
                           max_concurrency=args.max_concurrency, prediction_resource_id=resource_id)
    log = (lambda s: None) if args.json else (lambda s: print(f"cvbulk bench: {s}", file=sys.stderr, flush=True))
    connections = max(8, args.max_concurrency)
    async with TrainingClient(*training, pacer=Pacer.for_tier(args.tier, max_concurrency=args.max_concurrency),
                              max_connections=connections) as trainer:
        if prediction is None or not args.predict:
            return await run_bench(trainer, None, options, log=log)
        async with PredictionClient(*prediction, pacer=Pacer.for_tier(args.tier, max_concurrency=args.max_concurrency),
                                    max_connections=connections) as predictor:
            return await run_bench(trainer, predictor, options, log=log)


def _print(result: dict[str, Any]) -> None:
    rows = []
    for phase in ("upload", "predict"):
        r = result.get(phase)
        if not r:
            continue
        lat = r.get("latency_ms") or {}
        rows.append([phase, r.get("images"), r.get("failed"), _n(r.get("images_per_s")), _n(r.get("mb_per_s"), 2),
                     _n(lat.get("p50"), 0), _n(lat.get("p90"), 0), _n(lat.get("p99"), 0), r.get("throttled_429"),
                     r.get("retries"), r.get("concurrency_settled")])
    where = "emulator " + result["emulator"]["tier"] if result.get("emulator") else result.get("endpoint")
    print(f"cvbulk bench against {where} ({result.get('images')} images of ~{result.get('image_mb')} MB, "
          f"tier {result.get('tier')})")
    print_table(rows, ("phase", "images", "failed", "images/s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "429s",
                       "retries", "concurrency"))
    if result.get("training_s") is not None:
        print(f"training took {result['training_s']} s")
    if result.get("kept"):
        print(f"kept project {result.get('project')} ({result.get('project_id')})")
    elif result.get("deleted"):
        print(f"deleted the throw-away project {result.get('project')}")
    elif result.get("cleanup_error"):
        print(f"could not delete project {result.get('project')}: {result['cleanup_error']}")


def _n(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
