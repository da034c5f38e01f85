"""Progress display of the jobs: a one-line bar on a terminal, plain periodic lines otherwise, and the
end-of-run table. The jobs only report (``cvbulk.pipeline.engine.ProgressSink``); drawing is the CLI's.

``async with Progress(...) as progress:`` runs a drawing task in its own task group while the job
works and calls the sink's methods (:meth:`Progress.advanced` ...); on exit it draws a final line.
:func:`make_progress` picks the display from ``--progress`` / ``--quiet``. On a terminal the line is
redrawn in place (``\\r``) about ten times a second and cut to the terminal width (a wrapped line
cannot be redrawn in place); elsewhere (CI logs, files) one plain line every ``interval`` seconds
(10 by default), so logs stay short.

The clock is injectable and :meth:`Progress.tick` draws only when ``interval`` has passed on that
clock, so tests drive it without sleeping.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import anyio

from ..pipeline.engine import NullProgress

__all__ = ["Progress", "Silent", "make_progress", "summary_table", "format_duration", "PROGRESS_MODES"]

#: --progress: auto (a bar on a terminal, plain lines otherwise), bar, plain, none.
PROGRESS_MODES = ("auto", "bar", "plain", "none")

_TTY_INTERVAL = 0.1
_PLAIN_INTERVAL = 10.0
_RATE_WINDOW = 10.0  # seconds of history behind the live rates: steady, yet follows a change
_BAR_WIDTH = 20


def format_duration(seconds: float | None) -> str:
    """``M:SS`` or ``H:MM:SS``; ``--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts of a run and their display. All methods are cheap; call them from the event loop."""

    def __init__(
        self,
        total: int | None = None,
        label: str = "upload",
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = tty
        self.interval = interval if interval is not None else (_TTY_INTERVAL if tty else _PLAIN_INTERVAL)
        self.total = total
        self.ok = 0
        self.failed = 0
        self.skipped = 0
        self.nbytes = 0
        self._concurrency: int | Callable[[], int] | None = None
        self._clock = clock
        self._width = width
        self._started = clock()
        self._last_draw: float | None = None
        self._last_len = 0
        self._samples: deque[tuple[float, int, int]] = deque()
        self._tg: anyio.abc.TaskGroup | None = None
        self.phase_text: str | None = None

    # -- the job's reports (cvbulk.pipeline.engine.ProgressSink) ----------------------------------

    def started(self, total: int | None) -> None:
        if total is not None:
            self.total = total

    def advanced(self, *, ok: int = 0, failed: int = 0, skipped: int = 0, nbytes: int = 0) -> None:
        self.advance(ok=ok, failed=failed, skipped=skipped, nbytes=nbytes)

    def phase(self, text: str) -> None:
        self.phase_text = text

    def watch_concurrency(self, read: Callable[[], int | None]) -> None:
        self.set_concurrency(read)  # type: ignore[arg-type]

    def finished(self) -> None:
        if self.total is None:
            self.total = self.done  # an empty tree: a finished bar rather than "0/?"

    # -- counting --------------------------------------------------------------------------------

    def advance(self, ok: int = 0, failed: int = 0, skipped: int = 0, nbytes: int = 0) -> None:
        """Count files that reached an outcome (and the bytes sent for them)."""
        self.ok += ok
        self.failed += failed
        self.skipped += skipped
        self.nbytes += nbytes

    def set_total(self, n: int | None) -> None:
        """Set the number of files expected (None while unknown, e.g. while the scan runs)."""
        self.total = n

    def add_total(self, n: int) -> None:
        """Grow the expected total (a streaming scan finds files as it goes)."""
        self.total = (self.total or 0) + n

    def set_concurrency(self, n: int | Callable[[], int] | None) -> None:
        """The current concurrency, or a function that returns it (read at each draw)."""
        self._concurrency = n

    @property
    def concurrency(self) -> int | None:
        c = self._concurrency
        try:
            return c() if callable(c) else c
        except Exception:  # a display must never break the run
            return None

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.skipped

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "done": self.done,
            "total": self.total,
            "bytes": self.nbytes,
        }

    @property
    def elapsed(self) -> float:
        return max(self._clock() - self._started, 0.0)

    # -- rates -----------------------------------------------------------------------------------

    def _sample(self, now: float) -> None:
        self._samples.append((now, self.ok + self.failed, self.nbytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= _RATE_WINDOW:
            self._samples.popleft()

    def rates(self, *, overall: bool = False) -> tuple[float, float]:
        """(images/s, MB/s): over the last few seconds, or since the start when ``overall``.

        Skipped files (already done on a resume) are not counted: they would inflate the rate
        and shrink the ETA.
        """
        now = self._clock()
        processed = self.ok + self.failed
        if not overall and self._samples:
            t0, n0, b0 = self._samples[0]
            if now - t0 >= 1.0:
                return (processed - n0) / (now - t0), (self.nbytes - b0) / 1e6 / (now - t0)
        elapsed = now - self._started
        if elapsed <= 0:
            return 0.0, 0.0
        return processed / elapsed, self.nbytes / 1e6 / elapsed

    def eta(self) -> float | None:
        """Seconds left at the current rate; None when unknown."""
        if self.total is None:
            return None
        left = self.total - self.done
        if left <= 0:
            return 0.0
        rate, _ = self.rates()
        return left / rate if rate > 0 else None

    # -- drawing ---------------------------------------------------------------------------------

    def render(self, *, final: bool = False) -> str:
        """The status line (without ``\\r`` or newline)."""
        images_s, mb_s = self.rates(overall=final)
        total = self.total
        pct = min(100.0, 100.0 * self.done / total) if total else None
        conc = self.concurrency
        if self.tty and not final:
            parts = [self.label if not self.phase_text else f"{self.label} ({self.phase_text})"]
            if pct is not None:
                filled = int(_BAR_WIDTH * pct / 100)
                parts.append(f"{pct:3.0f}% |{'#' * filled}{'.' * (_BAR_WIDTH - filled)}|")
            parts.append(f"{self.done}/{total if total is not None else '?'}")
            parts.append(f"failed {self.failed}")
            parts.append(f"{images_s:.1f} img/s")
            parts.append(f"{mb_s:.2f} MB/s")
            if conc is not None:
                parts.append(f"conc {conc}")
            if total is not None:
                parts.append(f"ETA {format_duration(self.eta())}")
            return "  ".join(parts)
        head = f"{self.label} done:" if final else f"{self.label}:"
        parts = [f"{head} {self.done}/{total if total is not None else '?'}"]
        if pct is not None:
            parts[-1] += f" ({pct:.1f}%)"
        parts += [f"ok {self.ok}", f"failed {self.failed}", f"skipped {self.skipped}"]
        parts += [f"{images_s:.1f} images/s", f"{mb_s:.2f} MB/s"]
        if conc is not None:
            parts.append(f"concurrency {conc}")
        if final:
            parts.append(f"elapsed {format_duration(self.elapsed)}")
        elif total is not None:
            parts.append(f"ETA {format_duration(self.eta())}")
        return "  ".join(parts)

    def draw(self, *, final: bool = False) -> None:
        """Write the line now."""
        now = self._clock()
        self._sample(now)
        self._last_draw = now
        line = self.render(final=final)
        if self.tty:
            columns = self._width or shutil.get_terminal_size(fallback=(100, 24)).columns
            line = line[: max(columns - 1, 10)]
            # Pad over what the longer previous line left on screen.
            text = "\r" + line + " " * max(self._last_len - len(line), 0)
            self._last_len = len(line)
            if final:
                text += "\n"
        else:
            text = line + "\n"
        self._write(text)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream (a pipe to `head`) must not stop the run

    def tick(self) -> bool:
        """Draw if ``interval`` has passed since the last draw. True when drawn."""
        now = self._clock()
        if self._last_draw is None:
            # First call: start the sampling window, draw right away on a terminal only.
            self._sample(now)
            self._last_draw = now if not self.tty else now - self.interval
        if now - self._last_draw >= self.interval - 1e-9:  # float sums of a clock are inexact
            self.draw()
            return True
        return False

    async def _run(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            self.tick()

    async def __aenter__(self) -> Progress:
        self._started = self._clock()
        self._last_draw = None
        self._samples.clear()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        assert self._tg is not None
        tg, self._tg = self._tg, None
        tg.cancel_scope.cancel()
        try:
            # The body's own exception is not handed to the task group, so it propagates as
            # itself rather than wrapped in an ExceptionGroup; only the drawing task is stopped.
            await tg.__aexit__(None, None, None)
        finally:
            if exc is None or self.done:
                self.draw(final=True)
            elif self.tty and self._last_len:
                # The run failed before any file was done: the error line says it all, so only
                # clear the bar instead of leaving a "0/N done" line above it.
                self._write("\r" + " " * self._last_len + "\r")
        return None


class Silent(NullProgress):
    """The display of ``--progress none`` / ``--quiet``: hears everything, draws nothing."""

    async def __aenter__(self) -> Silent:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None


def make_progress(args: Any, label: str, stream: TextIO | None = None) -> Progress | Silent:
    """The display ``--progress`` (auto, bar, plain, none) and ``--quiet`` ask for. Both flags are added to
    every subcommand by ``cvbulk.cli``; read with defaults so a parser without them still works."""
    mode = getattr(args, "progress", None) or "auto"
    if getattr(args, "quiet", False) or mode == "none":
        return Silent()
    tty = {"bar": True, "plain": False}.get(mode)  # auto: ask the stream
    return Progress(label=label, stream=stream if stream is not None else sys.stderr, tty=tty)


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def summary_table(stats: Mapping[str, Any]) -> str:
    """The end-of-run table: files per status, then elapsed, images/s, MB/s, retries, 429s.

    Takes a report from :func:`cvbulk.pipeline.report.build_report`, or a flat dict with
    ``counts``, ``elapsed_s``, ``images_per_s``, ``mb_per_s``, ``retries``, ``throttled``.
    """
    counts = dict(stats.get("counts") or {})
    throughput = stats.get("throughput") or {}
    elapsed = stats.get("elapsed_s", stats.get("elapsed"))
    images_s = throughput.get("images_per_s", stats.get("images_per_s"))
    mb_s = throughput.get("mb_per_s", stats.get("mb_per_s"))
    retries = stats.get("retries", 0)
    throttled = stats.get("throttled_429", stats.get("throttled", 0))

    rows: list[tuple[str, str]] = [(status, str(n)) for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    rows.append(("total", str(sum(counts.values()))))
    tail = [
        ("elapsed", "-" if elapsed is None else f"{float(elapsed):.1f} s"),
        ("images/s", _number(images_s, ".1f")),
        ("MB/s", _number(mb_s, ".2f")),
        ("retries", str(retries or 0)),
        ("429s", str(throttled or 0)),
    ]
    left = max(len(name) for name, _ in [("status", ""), *rows, *tail])
    right = max(len(value) for _, value in [("", "files"), *rows, *tail])
    lines = [f"{'status':<{left}}  {'files':>{right}}"]
    for name, value in rows[:-1]:
        lines.append(f"{name:<{left}}  {value:>{right}}")
    lines.append(f"{'-' * left}  {'-' * right}")
    lines.append(f"{rows[-1][0]:<{left}}  {rows[-1][1]:>{right}}")
    lines.append("")
    lines += [f"{name:<{left}}  {value:>{right}}" for name, value in tail]
    return "\n".join(lines)
