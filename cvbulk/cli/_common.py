"""What every subcommand shares: connection settings, exit codes, error reporting, output."""

from __future__ import annotations

import argparse
import enum
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from ..client import TIERS as _TIER_TABLE
from ..client._errors import (
    AuthenticationError,
    CustomVisionError,
    RetryBudgetExhausted,
    TransportError,
    redact,
)
from ..pipeline._reasons import one_line
from ..pipeline.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from ..pipeline.results import JobResult

__all__ = [
    "ENV_TRAINING_ENDPOINT",
    "ENV_TRAINING_KEY",
    "ENV_PREDICTION_ENDPOINT",
    "ENV_PREDICTION_KEY",
    "ENV_PREDICTION_RESOURCE_ID",
    "ExitCode",
    "CLIError",
    "Connection",
    "add_common_args",
    "add_training_args",
    "add_prediction_args",
    "training_connection",
    "prediction_connection",
    "prediction_resource_id",
    "handle_errors",
    "print_table",
    "print_json",
    "known_secrets",
    "remember_secret",
    "check_endpoint",
    "TIERS",
    "tier_name",
    "env_tier",
    "check_tier",
    "job_parser",
    "add_root_arg",
    "add_state_args",
    "add_pace_group",
    "add_max_concurrency",
    "finish_job_parser",
    "check_tps",
    "check_concurrency",
    "check_root",
    "make_pacer",
    "show_report",
    "exit_status",
    "result_status",
    "finish",
    "failure_lines",
    "failure_summary",
    "flag_of",
    "INTERRUPTED",
    "SHOWN_FAILURES",
]

ENV_TRAINING_ENDPOINT = "VISION_TRAINING_ENDPOINT"
ENV_TRAINING_KEY = "VISION_TRAINING_KEY"
ENV_PREDICTION_ENDPOINT = "VISION_PREDICTION_ENDPOINT"
ENV_PREDICTION_KEY = "VISION_PREDICTION_KEY"
ENV_PREDICTION_RESOURCE_ID = "VISION_PREDICTION_RESOURCE_ID"

log = logging.getLogger("cvbulk")

#: The pricing tiers a job's --tier takes, in the order of the client's table (cvbulk.client.TIERS).
TIERS = tuple(_TIER_TABLE)


def tier_name(text: str) -> str:
    """``s0`` -> ``S0``: a tier named in any case (an unknown name is left for argparse to refuse)."""
    for tier in TIERS:
        if tier.lower() == text.strip().lower():
            return tier
    return text


#: The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: The exit status of a run stopped by SIGTERM (128 + SIGTERM): systemd, Kubernetes, ``timeout`` send it.
TERMINATED = 143


class ExitCode(enum.IntEnum):
    OK = 0
    PARTIAL = 1  # finished, but some items failed
    USAGE = 2  # usage or configuration error
    FATAL = 3  # authentication, project not found, service unreachable


class CLIError(Exception):
    """A one-line message for the user and the exit status that goes with it."""

    def __init__(self, message: str, exit_code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.exit_code = int(exit_code)


@dataclass(frozen=True)
class Connection:
    endpoint: str
    key: str

    def __repr__(self) -> str:  # never show the key
        return f"Connection(endpoint={self.endpoint!r}, key='***')"


# Every key the process has been given, so that error output can be scrubbed of them.
_SECRETS: set[str] = set()


def known_secrets() -> tuple[str, ...]:
    return tuple(_SECRETS)


def remember_secret(value: str | None) -> None:
    if value:
        _SECRETS.add(value)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and HTTP details (keys stay hidden)"
    )


def add_training_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training resource")
    group.add_argument(
        "--endpoint",
        "--training-endpoint",
        dest="training_endpoint",
        metavar="URL",
        help=f"training endpoint (default: ${ENV_TRAINING_ENDPOINT})",
    )
    group.add_argument(
        "--key",
        "--training-key",
        dest="training_key",
        metavar="KEY",
        help=f"training key (default: ${ENV_TRAINING_KEY}; prefer the variable, flags show in `ps`)",
    )


def add_prediction_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("prediction resource")
    group.add_argument(
        "--prediction-endpoint",
        metavar="URL",
        help=f"prediction endpoint (default: ${ENV_PREDICTION_ENDPOINT}, else the training endpoint)",
    )
    group.add_argument(
        "--prediction-key",
        metavar="KEY",
        help=f"prediction key (default: ${ENV_PREDICTION_KEY})",
    )


def _setting(args: argparse.Namespace, attr: str, env: str) -> str | None:
    value = getattr(args, attr, None) or os.environ.get(env) or None
    return value.strip() if value else None


def training_connection(args: argparse.Namespace) -> Connection:
    endpoint = _setting(args, "training_endpoint", ENV_TRAINING_ENDPOINT)
    key = _setting(args, "training_key", ENV_TRAINING_KEY)
    remember_secret(key)
    if not endpoint:
        raise CLIError(f"no training endpoint: pass --endpoint or set {ENV_TRAINING_ENDPOINT}")
    if not key:
        raise CLIError(f"no training key: pass --key or set {ENV_TRAINING_KEY}")
    return Connection(check_endpoint(endpoint), key)


def prediction_connection(args: argparse.Namespace) -> Connection:
    endpoint = (
        _setting(args, "prediction_endpoint", ENV_PREDICTION_ENDPOINT)
        or _setting(args, "training_endpoint", ENV_TRAINING_ENDPOINT)
    )
    key = _setting(args, "prediction_key", ENV_PREDICTION_KEY)
    remember_secret(key)
    if not endpoint:
        raise CLIError(
            f"no prediction endpoint: pass --prediction-endpoint or set {ENV_PREDICTION_ENDPOINT}"
        )
    if not key:
        raise CLIError(f"no prediction key: pass --prediction-key or set {ENV_PREDICTION_KEY}")
    return Connection(check_endpoint(endpoint), key)


def prediction_resource_id(args: argparse.Namespace) -> str | None:
    return _setting(args, "prediction_resource_id", ENV_PREDICTION_RESOURCE_ID)


def check_endpoint(endpoint: str) -> str:
    if not endpoint.startswith(("http://", "https://")):
        raise CLIError(f"endpoint must start with https:// (or http:// for the emulator): {endpoint!r}")
    return endpoint.rstrip("/")


def terminal_safe(text: object) -> str:
    """``_format.terminal_safe`` (imported late: ``_format`` imports this module)."""
    from ._format import terminal_safe as safe

    return safe(text)


def _one_line(exc: BaseException) -> str:
    return redact(one_line(exc), *known_secrets())


# A job option's words on the command line, where they are not "--" + the name with dashes.
_FLAGS = {
    "root": "ROOT",
    "project": "PROJECT",
    "training": "--endpoint/--key or VISION_TRAINING_*",
    "prediction_resource_id": f"--prediction-resource-id or ${ENV_PREDICTION_RESOURCE_ID}",
}


def flag_of(option: str) -> str:
    """The command line's name for a job option (``max_concurrency`` -> ``--max-concurrency``)."""
    return _FLAGS.get(option) or "--" + option.replace("_", "-")


def _pipeline_message(exc: PipelineError) -> str:
    return redact(" ".join(exc.render(flag_of).split()), *known_secrets())


@contextmanager
def settled_heap() -> Iterator[None]:
    """Around a long job: what start-up built (modules, parsers, the SDKs' tables: ~100,000 objects) is frozen
    out of the cyclic garbage collector's reach, so each full collection during the run walks only what the run
    made (measured on an upload by URL: the collector's CPU per image fell from ~30 to ~12 us). Unfrozen after,
    for a caller that runs more than one command in its process."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def handle_errors(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; turn every failure into one clear line and an exit status.

    A traceback is printed only with ``--debug``, and never with a key in it.
    """
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    terminated = _stop_on_sigterm()
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        from ._progress import interrupt_explained

        if not interrupt_explained():  # a job's display already said where it stopped and how to resume
            resumable = hasattr(args, "state")  # the jobs with a state file: upload, predict, export, migrate
            print("cvbulk: interrupted" + (": run the same command again to resume" if resumable else ""), file=sys.stderr)
        return TERMINATED if terminated.is_set() else INTERRUPTED
    except BaseException as exc:
        code, message = _classify(exc)
        if code is None:
            raise
        stopped = _stopped(exc)
        if stopped is not None:  # the run began and stopped (storage gone mid-run): its report first, then why
            _show_stopped(args, stopped)
        if debug:
            print(redact(traceback.format_exc(), *known_secrets()), file=sys.stderr, end="")
        # Names, tags and the service's words are data: no control character reaches the terminal.
        print(f"cvbulk: error: {terminal_safe(message)}", file=sys.stderr)
        return code


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM (a service manager, a pod's end, ``timeout``) stops a run as Ctrl-C does: the event loop's own SIGINT
    handling cancels the job, which records what it finished, says how to resume, and exits 143. Left as it is where
    SIGINT is ignored (a job started with ``&`` by a shell without job control), so TERM still ends the process.
    The event says whether TERM came."""
    came = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return came
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return came

    def on_term(signum: int, frame: Any) -> None:
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):  # nobody would stop the job
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        came.set()
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, on_term)
    return came


def _stopped(exc: BaseException) -> Any:
    """The ``engine.RunStopped`` behind ``exc`` (a task group of one included), or None."""
    from ..pipeline.engine import RunStopped

    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _stopped(exc.exceptions[0])
    return exc if isinstance(exc, RunStopped) else None


def _show_stopped(args: argparse.Namespace, stopped: Any) -> None:
    """A stopped run's end on screen as any run's (the summary, ``--json``'s report, where state and report are);
    the error line that follows says why it stopped and what to do."""
    result = getattr(stopped, "result", None)
    if result is None or getattr(result, "report", None) is None:
        return
    show_report(args, result)
    left = (result.report.get("stopped") or {}).get("not_reached")
    if left and not getattr(args, "quiet", False):
        print(f"not reached: {left:,} listed images (the same command takes them up)", file=sys.stderr)
    if getattr(result, "report_file", None) is not None and not getattr(args, "quiet", False):
        print(f"state: {result.state_file}   report: {result.report_file}", file=sys.stderr)


def _classify(exc: BaseException) -> tuple[int | None, str]:
    if isinstance(exc, SystemExit):
        return None, ""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _classify(exc.exceptions[0])
    if isinstance(exc, CLIError):
        return exc.exit_code, _one_line(exc)
    # The jobs' errors carry no exit status: it is decided here, and only here.
    if isinstance(exc, ConfigError):
        return ExitCode.USAGE, _pipeline_message(exc)
    if isinstance(exc, PipelineError):  # ProjectNotFound, FatalRunError
        return ExitCode.FATAL, _pipeline_message(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        # Found damaged mid-run (the check on opening catches most): the state file, not a bug.
        return ExitCode.USAGE, f"the state file is damaged or not a cvbulk state file: {_one_line(exc)}"
    if isinstance(exc, CustomVisionError):
        # A retry give-up is judged by its last cause, but worded as itself ("gave up after N attempts").
        cause = exc.last_error if isinstance(exc, RetryBudgetExhausted) else exc
        return ExitCode.FATAL, _one_line(exc) + _hint(cause)
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError)):
        return ExitCode.USAGE, _one_line(exc)
    if isinstance(exc, OSError):
        return ExitCode.FATAL, _one_line(exc)
    return ExitCode.FATAL, f"unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with --debug)"


def _hint(exc: CustomVisionError) -> str:
    if isinstance(exc, AuthenticationError):
        return " (check the key and the endpoint)"
    if isinstance(exc, TransportError):
        return " (is the endpoint right and reachable?)"
    return ""


def print_json(obj: Any, file=None) -> None:
    json.dump(obj, file or sys.stdout, indent=2, sort_keys=False, default=str)
    (file or sys.stdout).write("\n")


def print_table(
    rows: Iterable[Sequence[Any]], headers: Sequence[str], file=None
) -> None:
    """A plain aligned table (what `cvbulk projects list` and friends print on a terminal)."""
    out = file or sys.stdout
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*headers).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print(fmt.format(*row).rstrip(), file=out)


# -- what the resumable jobs share (upload, predict, export, migrate) -----------------------------------


def job_parser(subparsers: Any, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A job's parser; the raw formatter keeps the description's and the epilog's own lines."""
    return subparsers.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_root_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", type=Path, help="the folder of images (walked recursively)")


def add_state_args(
    parser: argparse.ArgumentParser,
    state_help: str,
    report_help: str = "JSON report (default: next to the state file)",
) -> None:
    parser.add_argument("--state", type=Path, default=None, metavar="FILE", help=state_help)
    parser.add_argument("--report", type=Path, default=None, metavar="FILE", help=report_help)


def add_pace_group(parser: argparse.ArgumentParser, tier_help: str) -> Any:
    """The "pace" group with --tier (default $CVBULK_TIER, else S0); each job adds its own pace flags."""
    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--tier", type=tier_name, choices=TIERS, default=env_tier("S0"), help=tier_help
    )
    return pace


def add_max_concurrency(group: Any, default: int, help: str) -> None:
    group.add_argument("--max-concurrency", type=int, default=default, metavar="N", help=help)


def finish_job_parser(
    parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int], *, prediction: bool = False
) -> None:
    """--json, the connection flags and the handler: the tail of every job's parser."""
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_common_args(parser)
    if prediction:
        add_prediction_args(parser)
    add_training_args(parser)
    parser.set_defaults(handler=handler)


def check_tps(tps: float | None) -> None:
    if tps is not None and tps <= 0:
        raise CLIError("--tps must be more than 0 (use --tier unlimited for no limit)")


def check_concurrency(max_concurrency: int) -> None:
    if max_concurrency < 1:
        raise CLIError("--max-concurrency must be at least 1")


def check_root(root: Path) -> None:
    if not root.is_dir():
        raise CLIError(f"ROOT {str(root)!r} is not a folder")


def env_tier(default: str = "S0") -> str:
    """``$CVBULK_TIER`` in its canonical spelling (any case), else ``default``: a --tier flag's default.
    A wrong value is left as it is, for :func:`check_tier` to refuse when the command runs (not when
    ``--help`` is built)."""
    return tier_name(os.environ.get("CVBULK_TIER") or default)


def check_tier(tier: str) -> str:
    """``tier`` when it is one of TIERS; a wrong one can only have come from $CVBULK_TIER (argparse checks
    the flag), so the message names the variable."""
    if tier in TIERS:
        return tier
    raise CLIError(f"CVBULK_TIER must be one of {', '.join(TIERS)} (any case), not {tier!r}")


def make_pacer(tier: str, tps: float | None, max_concurrency: int, *, prediction: bool = False) -> Any:
    """The Pacer of one resource: its tier's rates, or ``tps`` calls per second for the job's own
    calls (training calls, or with ``prediction`` both prediction groups)."""
    from ..client import ApiGroup, Pacer
    from ..client._ratelimit import TIER_RATES

    check_tier(tier)

    if tps is None:
        return Pacer.for_tier(tier, max_concurrency=max_concurrency)
    check_tps(tps)
    rates = dict(TIER_RATES[tier])
    for group in (ApiGroup.PREDICTION_STORE, ApiGroup.PREDICTION_NOSTORE) if prediction else (ApiGroup.TRAINING,):
        rates[group] = tps
    return Pacer(
        training_tps=rates[ApiGroup.TRAINING],
        train_project_tps=rates[ApiGroup.TRAIN_PROJECT],
        prediction_store_tps=rates[ApiGroup.PREDICTION_STORE],
        prediction_nostore_tps=rates[ApiGroup.PREDICTION_NOSTORE],
        max_concurrency=max_concurrency,
    )


#: Failures listed on screen at the end of a run (all of them are in the report).
SHOWN_FAILURES = 10


def show_report(args: argparse.Namespace, result: JobResult, label: str | None = None) -> dict[str, Any]:
    """The end of a run on screen: the final line and the summary table (one set of figures, the
    report's), then the first failures with their reasons; JSON on stdout with ``--json``. Returns the
    job's own figures."""
    report = result.report
    from ._progress import final_line, summary_table

    if args.json:
        print_json(report)
    if not getattr(args, "quiet", False):
        name = label or str(report.get("job") or "run")
        print(terminal_safe(final_line(name, report)), file=sys.stderr)
        print(summary_table(report), file=sys.stderr)
        listed = failure_lines(result.failures)
        if listed:
            print("", file=sys.stderr)
            print("\n".join(listed), file=sys.stderr)
    return result.summary


def failure_lines(failures: Sequence[dict[str, Any]], limit: int = SHOWN_FAILURES) -> list[str]:
    """The first ``limit`` failures as aligned "path  reason" lines under a heading (as the dry run
    lists its rejects); a last line says how many more the report holds."""
    if not failures:
        return []
    shown = [(terminal_safe(f.get("path") or "?"), terminal_safe(f.get("reason") or f.get("status") or "")) for f in failures[:limit]]
    width = min(max(len(path) for path, _ in shown), 60)
    head = "failed:" if len(failures) <= limit else f"failed (the first {limit} of {len(failures):,}):"
    lines = [head] + [f"  {path:<{width}}  {reason}" for path, reason in shown]
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit:,} more in the report")
    return lines


def exit_status(exit_code: int) -> int:
    return int(exit_code) if exit_code else int(ExitCode.OK)


def result_status(result: JobResult) -> int:
    """A job's exit status: 0 when every item is done, 1 when some failed."""
    return int(ExitCode.OK if result.ok else ExitCode.PARTIAL)


def failure_summary(result: JobResult) -> str | None:
    """Why a run exits 1, in one line: ``3 of 1,000 images failed: see the report FILE (...)``, with
    what to do about them; None when it exits 0."""
    if result.ok:
        return None
    report = result.report
    failures = result.failures
    extra = report.get("extra") or {}
    would_send = extra.get("would_send") or {}  # a dry run: what passed the checks is not in counts
    already = int(extra.get("unchanged") or extra.get("already_done") or 0)
    total = int(report.get("total") or 0) + already + int(would_send.get("images") or 0)
    where = f"see the report {result.report_file}" if result.report_file is not None else "see the list above"
    if extra.get("label_paths"):  # the label file matched nothing: its paths, not the images, are the problem
        return f"{extra['label_paths']}; {where}"
    if not failures:
        return f"some items did not finish: {where} (run the same command again to retry them)"
    # Rejected input fails again until it is fixed; anything else may pass on the next run.
    if all(f.get("status") == "rejected" for f in failures):
        then = "fix or remove them, then run the same command again"
    else:
        then = "run the same command again to retry them"
    of = f" of {total:,}" if total >= len(failures) else ""
    noun = "image" if (total if of else len(failures)) == 1 else "images"
    return f"{len(failures):,}{of} {noun} failed: {where} ({then})"


def finish(result: JobResult, *, quiet: bool = False) -> int:
    """The closing lines (why the run exits 1, where state and report are) and the exit status."""
    reason = failure_summary(result)
    if reason is not None:
        print(terminal_safe(reason), file=sys.stderr)  # even with --quiet: it is the exit status's reason
    if not quiet:
        print(f"state: {result.state_file}   report: {result.report_file}", file=sys.stderr)
    return result_status(result)
