"""`cvbulk emulator`: serve a local, persistent Custom Vision (training + prediction) until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import anyio

from ._common import CLIError, ExitCode, add_common_args, check_tier, env_tier, remember_secret

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..emulator import DEFAULT_PREDICTION_KEY, DEFAULT_TRAINING_KEY, TIERS

    parser = subparsers.add_parser(
        "emulator",
        help="run a local Custom Vision service (for tests, demos and benchmarks)",
        description=(
            "Serve a local, persistent Custom Vision service (training + prediction) on this machine. "
            "Prints one line with its URL and keys once it listens; stops on Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="folder for records and images (default: a temporary one, removed on exit)")
    parser.add_argument("--tier", choices=sorted(TIERS), default=env_tier("unlimited"),
                        help="pricing tier whose rate limits and quotas to play (default: unlimited, or $CVBULK_TIER)")
    parser.add_argument("--training-tps", type=float, metavar="N", help="training calls per second")
    parser.add_argument("--prediction-tps", type=float, metavar="N", help="prediction calls per second")
    parser.add_argument("--no-retry-after", dest="retry_after", action="store_false",
                        help="leave the Retry-After header out of 429 answers")
    parser.add_argument("--training-key", default=DEFAULT_TRAINING_KEY, metavar="KEY",
                        help="the Training-Key it accepts (default: the emulator's well-known key)")
    parser.add_argument("--prediction-key", default=DEFAULT_PREDICTION_KEY, metavar="KEY",
                        help="the Prediction-Key it accepts (default: the emulator's well-known key)")
    faults = parser.add_argument_group("misbehaviour (off by default)")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="P", help="share of requests answered 500/503")
    faults.add_argument("--drop-rate", type=float, default=0.0, metavar="P", help="share of connections dropped")
    faults.add_argument("--drop-after-work", type=float, default=0.5, metavar="P",
                        help="share of the dropped requests dropped after the work was done")
    faults.add_argument("--throttle-burst", type=int, default=0, metavar="N",
                        help="answer the first N API requests with 429")
    faults.add_argument("--latency", type=float, default=0.0, metavar="S", help="seconds added to every request")
    faults.add_argument("--latency-per-image", type=float, default=0.0, metavar="S")
    faults.add_argument("--latency-per-mb", type=float, default=0.0, metavar="S")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault dice and the trainer")
    add_common_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..emulator import Emulator, EmulatorConfig, Faults, Latency, startup_line

    if not 0 <= args.port <= 65535:
        raise CLIError("--port must be 0..65535")
    for rate in (args.error_rate, args.drop_rate, args.drop_after_work):
        if not 0.0 <= rate <= 1.0:
            raise CLIError("--error-rate, --drop-rate and --drop-after-work must be between 0 and 1")
    if args.throttle_burst < 0:
        raise CLIError("--throttle-burst must be 0 or more")
    check_tier(args.tier)
    remember_secret(args.training_key)  # printed once at start-up, scrubbed from any error output
    remember_secret(args.prediction_key)
    config = EmulatorConfig(
        host=args.host, port=args.port, data_dir=args.data, tier=args.tier,
        training_tps=args.training_tps, prediction_tps=args.prediction_tps, retry_after=args.retry_after,
        training_key=args.training_key, prediction_key=args.prediction_key,
        faults=Faults(error_rate=args.error_rate, drop_rate=args.drop_rate, drop_after_work=args.drop_after_work,
                      throttle_burst=args.throttle_burst),
        latency=Latency(per_request=args.latency, per_image=args.latency_per_image, per_mb=args.latency_per_mb),
        seed=args.seed,
    )

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with Emulator(config) as emu:
                print(startup_line(emu), flush=True)
                async for _ in signals:
                    break

    anyio.run(serve)
    return ExitCode.OK
