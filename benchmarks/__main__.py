"""``python -m benchmarks``: run the suite (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ._machine import load_average, machine_info
from ._report import update_readme, write_results
from .scenarios import SCENARIOS, Context

RESULTS = Path(__file__).resolve().parent / "results"

#: Short names for --only (issue 14 names its rows this way).
ALIASES = {"upload_s0": "upload-rate", "cpu": "upload-cpu", "memory": "memory", "predict": "predict-rate",
           "prepare": "prepare"}


def _only(text: str) -> list[str]:
    """``upload_s0,cpu,memory`` -> the scenario names; an unknown name is a usage error."""
    names = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name = ALIASES.get(part, part)
        if name not in SCENARIOS:
            known = ", ".join([*SCENARIOS, *ALIASES])
            raise argparse.ArgumentTypeError(f"unknown scenario {part!r} (known: {known})")
        names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--short", action="store_true", help="small trees, one run each: a quick check (< 60 s)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), metavar="NAME",
                        help=f"run only these (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--only", type=_only, default=None, metavar="A,B",
                        help="run only these, comma-separated: scenario names or the short names "
                             f"{', '.join(f'{k} ({v})' for k, v in ALIASES.items())}; "
                             "e.g. --only upload_s0,cpu,memory (issue 14's rows side by side)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default: 3, or 1 with --short)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where results go (default: benchmarks/results, or with --short the untracked "
                             "benchmarks/results/local)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated trees (default 1)")
    parser.add_argument("--fresh", action="store_true",
                        help="do not keep the other scenarios' results already in OUT (default: merge)")
    args = parser.parse_args(argv)
    mode = "short" if args.short else "full"
    runs = args.runs or (1 if args.short else 3)
    # A short run is a local check, taken on whatever machine and load: never committed.
    out = args.out or (RESULTS / "local" if args.short else RESULTS)
    wanted = set(args.scenario or ()) | set(args.only or ())
    names = [name for name in SCENARIOS if name in wanted] if wanted else list(SCENARIOS)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    results = {"mode": mode, "runs": runs, "seed": args.seed, "machine": machine_info(), "scenarios": {}}
    previous = out / "results.json"
    if previous.exists() and not args.fresh:
        try:
            old = json.loads(previous.read_text())
            if old.get("mode") == mode and old.get("seed") == args.seed:
                results["scenarios"] = {k: v for k, v in old.get("scenarios", {}).items() if k in SCENARIOS}
        except (ValueError, OSError):
            pass
    ctx = Context(short=args.short, runs=runs, seed=args.seed, log=log)
    for name in names:
        log(f"scenario {name}")
        load = load_average()
        t0 = time.perf_counter()
        result = SCENARIOS[name](ctx)
        result["measured_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        result["load_average_before"] = load
        result["seconds"] = round(time.perf_counter() - t0, 1)
        results["scenarios"][name] = result
        # in the suite's own order, whatever order they ran in
        results["scenarios"] = {k: results["scenarios"][k] for k in SCENARIOS if k in results["scenarios"]}
        paths = write_results(results, out)
        if mode == "full" and out.resolve() == RESULTS.resolve():
            update_readme(results, RESULTS.parent / "README.md")
        log(f"scenario {name} done in {result['seconds']} s -> {paths['markdown']}")
    log(f"all done in {time.perf_counter() - started:.0f} s")
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
