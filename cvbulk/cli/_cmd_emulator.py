"""`cvbulk emulator`: serve a local, persistent Custom Vision (training + prediction) until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import anyio

from ._common import CLIError, ExitCode, add_common_args, check_tier, env_tier, remember_secret

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..emulator import KEY_ENV, TIER_LATENCY, TIERS

    f0, s0 = TIER_LATENCY["F0"], TIER_LATENCY["S0"]
    parser = subparsers.add_parser(
        "emulator",
        help="run a local Custom Vision service (for tests, demos and benchmarks)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Serve a local, persistent Custom Vision service (training + prediction) on this machine.\n"
            "Once it listens it prints one line with its URL and keys, then the tier it plays, where its\n"
            "image URIs are served, and ready-to-paste `export VISION_...=...` lines; it stops on Ctrl-C\n"
            "or SIGTERM."
        ),
        epilog=(
            "environment:\n"
            f"  {KEY_ENV['training']}    the Training-Key to accept (instead of --training-key,\n"
            "                                  which other users can read in `ps`)\n"
            f"  {KEY_ENV['prediction']}  the Prediction-Key to accept (instead of --prediction-key)\n"
            "\n"
            "service-like behaviour:\n"
            f"  --tier F0 / S0 also play the service's latency unless --latency* is given: F0\n"
            f"  {f0.per_request} s per call + {f0.per_image} s per image, S0 {s0.per_request} s + {s0.per_image} s "
            "(from the\n  timestamps of recorded real-service sessions); --latency 0 turns it off.\n"
            "  Image URIs, export tokens and exported-model links are served on a listener of their own\n"
            "  (same host, --storage-port; the service's are on a storage account's host), need no key,\n"
            "  are signed, bound to their project and expire after --url-ttl seconds (the service's SAS\n"
            "  links: about 24 h); an expired one answers 403 AuthenticationFailed as Azure Storage does.\n"
            "  A connection that sends no whole request head within --header-timeout seconds is closed;\n"
            "  a body must arrive within --read-timeout seconds; a request body is at most 400 MB (64\n"
            "  images of 6 MB)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")
    parser.add_argument("--storage-port", type=int, default=0, metavar="PORT",
                        help="port of image URIs, export tokens and model links (default: 0: the data folder's "
                             "last one if free, else a free one)")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="folder for records and images (default: a temporary one, removed on exit)")
    parser.add_argument("--tier", choices=sorted(TIERS), default=env_tier("unlimited"),
                        help="pricing tier whose rate limits and quotas to play (default: unlimited, or $CVBULK_TIER)")
    parser.add_argument("--training-tps", type=float, metavar="N", help="training calls per second")
    parser.add_argument("--prediction-tps", type=float, metavar="N", help="prediction calls per second")
    parser.add_argument("--no-retry-after", dest="retry_after", action="store_false",
                        help="leave the Retry-After header out of 429 answers")
    parser.add_argument("--training-key", metavar="KEY",
                        help=f"the Training-Key it accepts (default: ${KEY_ENV['training']}, else the "
                             "emulator's well-known key)")
    parser.add_argument("--prediction-key", metavar="KEY",
                        help=f"the Prediction-Key it accepts (default: ${KEY_ENV['prediction']}, else the "
                             "emulator's well-known key)")
    parser.add_argument("--training-seconds", type=float, default=0.5, metavar="S",
                        help="how long a training takes at least, so a poller sees Training (default: 0.5)")
    parser.add_argument("--url-ttl", type=float, default=24 * 3600.0, metavar="S",
                        help="lifetime of image URIs, export tokens and model links in seconds (default: 86400, as the "
                             "service's SAS links)")
    parser.add_argument("--header-timeout", type=float, default=30.0, metavar="S",
                        help="close a connection idle or stuck in its request head this long (default: 30)")
    parser.add_argument("--read-timeout", type=float, default=120.0, metavar="S",
                        help="refuse a request whose body has not arrived after this long (default: 120)")
    faults = parser.add_argument_group("misbehaviour (off by default)")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="P", help="share of requests answered 500/503")
    faults.add_argument("--drop-rate", type=float, default=0.0, metavar="P", help="share of connections dropped")
    faults.add_argument("--drop-after-work", type=float, default=0.5, metavar="P",
                        help="share of the dropped requests dropped after the work was done")
    faults.add_argument("--throttle-burst", type=int, default=0, metavar="N",
                        help="answer the first N API requests with 429")
    faults.add_argument("--latency", type=float, metavar="S",
                        help="seconds added to every request (default: the tier's; 0 with none of the "
                             "--latency* flags given and tier unlimited). Any --latency* flag replaces the "
                             "tier's latency: the ones not given are 0")
    faults.add_argument("--latency-per-image", type=float, metavar="S")
    faults.add_argument("--latency-per-mb", type=float, metavar="S")
    faults.add_argument("--latency-per-download", type=float, metavar="S",
                        help="seconds the storage listener waits before each answer (image, export, model)")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault dice and the trainer")
    add_common_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..emulator import (
        DEFAULT_PREDICTION_KEY,
        DEFAULT_TRAINING_KEY,
        KEY_ENV,
        Emulator,
        EmulatorConfig,
        Faults,
        Latency,
        env_lines,
        startup_line,
    )

    if not 0 <= args.port <= 65535 or not 0 <= args.storage_port <= 65535:
        raise CLIError("--port and --storage-port must be 0..65535")
    for rate in (args.error_rate, args.drop_rate, args.drop_after_work):
        if not 0.0 <= rate <= 1.0:
            raise CLIError("--error-rate, --drop-rate and --drop-after-work must be between 0 and 1")
    if args.throttle_burst < 0:
        raise CLIError("--throttle-burst must be 0 or more")
    check_tier(args.tier)
    if args.training_seconds < 0 or args.url_ttl <= 0 or args.header_timeout <= 0 or args.read_timeout <= 0:
        raise CLIError("--training-seconds must be >= 0; --url-ttl, --header-timeout, --read-timeout > 0")
    training_key = args.training_key or os.environ.get(KEY_ENV["training"]) or DEFAULT_TRAINING_KEY
    prediction_key = args.prediction_key or os.environ.get(KEY_ENV["prediction"]) or DEFAULT_PREDICTION_KEY
    remember_secret(training_key)  # printed once at start-up, scrubbed from any error output
    remember_secret(prediction_key)
    given = (args.latency, args.latency_per_image, args.latency_per_mb, args.latency_per_download)
    latency = None if all(v is None for v in given) else Latency(*(v or 0.0 for v in given))
    config = EmulatorConfig(
        host=args.host, port=args.port, storage_port=args.storage_port, data_dir=args.data, tier=args.tier,
        training_tps=args.training_tps, prediction_tps=args.prediction_tps, retry_after=args.retry_after,
        training_key=training_key, prediction_key=prediction_key,
        faults=Faults(error_rate=args.error_rate, drop_rate=args.drop_rate, drop_after_work=args.drop_after_work,
                      throttle_burst=args.throttle_burst),
        latency=latency, seed=args.seed, training_seconds=args.training_seconds, url_ttl_seconds=args.url_ttl,
        header_timeout=args.header_timeout, read_timeout=args.read_timeout,
    )

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with Emulator(config) as emu:
                print(startup_line(emu), flush=True)
                print(env_lines(emu), flush=True)
                async for _ in signals:
                    break

    anyio.run(serve)
    return ExitCode.OK
