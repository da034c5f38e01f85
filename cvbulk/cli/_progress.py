"""Progress display of the jobs: a one-line bar on a terminal, plain periodic lines otherwise, and the
end-of-run table. The jobs only report (``cvbulk.pipeline.engine.ProgressSink``); drawing is the CLI's.

``async with Progress(...) as progress:`` runs a drawing task in its own task group while the job
works and calls the sink's methods (:meth:`Progress.advanced` ...); on exit it draws a final line.
:func:`make_progress` picks the display from ``--progress`` / ``--quiet``. On a terminal the line is
redrawn in place (``\\r``) about ten times a second and cut to the terminal width (a wrapped line
cannot be redrawn in place); elsewhere (CI logs, files) one plain line every ``interval`` seconds
(10 by default), so logs stay short.

Totals tell the truth: a job that scans lazily hands the display a count of its source
(``count_with``, run in a worker thread within a few seconds' budget) and says when its scan is over
(``scan_done``). Until one of them answers no line is drawn (a terminal shows "counting"), so every
line states the final total; when the count gives up the total is shown as unknown (``89/?``, no
percentage, no ETA) until the scan ends. Phases and notices (tag creation, retries) are lines of their
own, above the bar on a terminal and as plain lines in a log; notices of one kind (retries that differ
only in their numbers) at most one a second, the rest counted in the next one. The end of a clean run is not drawn here: the CLI prints one final line and
the summary table from the job's report (:func:`final_line`, :func:`summary_table`), so both show the
same figures. An interrupted run ends with "interrupted at 89/1,000: run the same command again to
resume".

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
import anyio.to_thread

from ..pipeline.engine import NullProgress
from ._format import terminal_safe

__all__ = [
    "Progress",
    "Silent",
    "make_progress",
    "summary_table",
    "final_line",
    "format_duration",
    "PROGRESS_MODES",
    "RESUME_HINT",
    "interrupt_explained",
]

#: --progress: auto (a bar on a terminal, plain lines otherwise), bar, plain, none.
PROGRESS_MODES = ("auto", "bar", "plain", "none")

_TTY_INTERVAL = 0.1
_PLAIN_INTERVAL = 10.0
_RATE_WINDOW = 10.0  # seconds of history behind the live rates: steady, yet follows a change
_BAR_WIDTH = 20
_NOTICE_GAP = 1.0  # seconds between two notice lines; notices in between are counted in the next
RESUME_HINT = "run the same command again to resume"

# Set once a display has said where a run was interrupted, so the CLI does not say it twice.
_INTERRUPT_SAID = [False]


def interrupt_explained() -> bool:
    """True when a progress display already printed the "interrupted at ..." line of this process."""
    return _INTERRUPT_SAID[0]


def _kind(text: str) -> str:
    """A notice without its numbers: retries of one kind ("... in 1.0 s (attempt 3)") are one kind."""
    return "".join(c for c in text if not c.isdigit())


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
        self._given = total  # a total known up front (export, migrate, tests)
        self._found = 0  # what a lazy scan reported with add_total
        self._counted: int | None = None  # the source's count, when it finished in time
        self._counter: Callable[[], int | None] | None = None
        self._counting = False  # a count is running: hold the numbers back until it answers
        self._scan_done = False
        self._notices: list[str] = []
        self._held = 0  # notices not printed (too close together), said in the next one
        self._last_notice: float | None = None
        self._last_kind = ""
        # Before the job says it started (project, tags) there are no numbers to show, only phases.
        # A Progress made with a total (tests, a caller that counts itself) has begun already.
        self._begun = total is not None
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
        self._begun = True
        if total is not None:
            self._given = total
        # Rates and ETA count from here: project and tag set-up before it is not sending time.
        self._started = self._clock()
        self._samples.clear()

    def advanced(self, *, ok: int = 0, failed: int = 0, skipped: int = 0, nbytes: int = 0) -> None:
        self.advance(ok=ok, failed=failed, skipped=skipped, nbytes=nbytes)

    def phase(self, text: str) -> None:
        """A line of its own now (tag creation, a retry), at most one a second: see the module doc."""
        self.phase_text = text
        now = self._clock()
        kind = _kind(text)
        if self._last_notice is not None and now - self._last_notice < _NOTICE_GAP and kind == self._last_kind:
            self._held += 1
            self._notices = [text]  # the latest one stands for the ones held back
            return
        if self._notices:
            self._notice(self._notices[-1], now)  # a different notice: what was held goes first
        self._notice(text, now)
        self._last_kind = kind

    def watch_concurrency(self, read: Callable[[], int | None]) -> None:
        self.set_concurrency(read)  # type: ignore[arg-type]

    def count_with(self, count: Callable[[], int | None]) -> None:
        """Count the items up front with ``count`` (blocking: run in a worker thread). Until it answers,
        or the scan ends, the display holds its numbers back."""
        self._counter = count
        self._counting = True
        if self._tg is not None:
            self._tg.start_soon(self._run_count)
        else:  # not drawing on its own (a test, a library caller): count right here
            self._take_count(count)

    def scan_done(self) -> None:
        """The job's scan is over: what it reported with ``add_total`` is the total."""
        self._scan_done = True
        self._counting = False

    def finished(self) -> None:
        self._begun = True
        if self._given is None and not self._scan_done and self._counted is None:
            self._scan_done = True  # the run is over: what was found is all there is
        self._counting = False

    # -- counting --------------------------------------------------------------------------------

    def _take_count(self, count: Callable[[], int | None]) -> None:
        try:
            self._counted = count()
        except Exception:  # a count is a courtesy: the scan's own total still comes
            self._counted = None
        self._counting = False

    async def _run_count(self) -> None:
        counter = self._counter
        if counter is None:
            return
        try:
            counted = await anyio.to_thread.run_sync(counter, abandon_on_cancel=True)
        except Exception:
            counted = None
        self._counted = counted
        self._counting = False
        if self.tty and self._last_draw is not None:
            self.draw()  # replace the "counting" line at once
    # -- counting --------------------------------------------------------------------------------

    def advance(self, ok: int = 0, failed: int = 0, skipped: int = 0, nbytes: int = 0) -> None:
        """Count files that reached an outcome (and the bytes sent for them)."""
        self.ok += ok
        self.failed += failed
        self.skipped += skipped
        self.nbytes += nbytes

    def set_total(self, n: int | None) -> None:
        """Set the number of files expected (None while unknown, e.g. while the scan runs)."""
        self._given = n

    def add_total(self, n: int) -> None:
        """Grow the expected total (a streaming scan finds files as it goes)."""
        self._found += n

    @property
    def total(self) -> int | None:
        """The total to show: given up front; else the scan's once it is over; else the count (never
        less than the scan found so far); else None (unknown)."""
        if self._given is not None:
            return self._given + self._found
        if self._scan_done:
            return self._found
        if self._counted is not None:
            return max(self._counted, self._found)
        return None

    @property
    def holding(self) -> bool:
        """True while a count runs and the scan is not over: a line now could show a wrong total."""
        return self._counting and not self._scan_done and self._given is None

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
        shown_total = f"{total:,}" if total is not None else "?"
        if self.tty and not final:
            if self.holding:
                return f"{self.label}: counting files ... ({self.done:,} done)"
            parts = [self.label]
            if pct is not None:
                filled = int(_BAR_WIDTH * pct / 100)
                parts.append(f"{pct:3.0f}% |{'#' * filled}{'.' * (_BAR_WIDTH - filled)}|")
            parts.append(f"{self.done:,}/{shown_total}")
            parts.append(f"failed {self.failed}")
            parts.append(f"{images_s:.1f} img/s")
            parts.append(f"{mb_s:.2f} MB/s")
            if conc is not None:
                parts.append(f"conc {conc}")
            if total is not None:
                parts.append(f"ETA {format_duration(self.eta())}")
            return "  ".join(parts)
        head = f"{self.label} done:" if final else f"{self.label}:"
        parts = [f"{head} {self.done:,}/{shown_total}"]
        if pct is not None:
            parts[-1] += f" ({pct:.1f}%)"
        parts += [f"ok {self.ok}", f"failed {self.failed}", f"not needed {self.skipped}"]
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

    def _notice(self, text: str, now: float) -> None:
        """Print a notice line: above the bar on a terminal (the bar is redrawn under it)."""
        if self._held > 1:  # the one printed stands for itself and the others held back
            text += f" (and {self._held - 1} more like it)"
        self._held = 0
        self._notices = []
        self._last_notice = now
        line = terminal_safe(f"{self.label}: {text}")
        if self.tty:
            columns = self._width or shutil.get_terminal_size(fallback=(100, 24)).columns
            line = line[: max(columns - 1, 10)]
            pad = " " * max(self._last_len - len(line), 0)
            self._last_len = 0
            self._write("\r" + line + pad + "\n")
            if self._last_draw is not None:
                self.draw()
        else:
            self._write(line + "\n")

    def _flush_notices(self, *, now_or_never: bool = False) -> None:
        if self._notices:
            now = self._clock()
            if now_or_never or self._last_notice is None or now - self._last_notice >= _NOTICE_GAP:
                self._notice(self._notices[-1], now)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream (a pipe to `head`) must not stop the run

    def tick(self) -> bool:
        """Draw if ``interval`` has passed since the last draw. True when drawn.

        While a count runs (:attr:`holding`) a plain log gets no line (it would show a total that is
        about to change); a terminal shows "counting files"."""
        self._flush_notices()
        now = self._clock()
        if not self._begun or (self.holding and not self.tty):
            return False
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
            # Wake at least once a second: a held notice is printed without waiting for a plain line.
            await anyio.sleep(min(self.interval, _NOTICE_GAP))
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
            self._flush_notices(now_or_never=True)
            interrupted = exc_type is not None and (
                issubclass(exc_type, KeyboardInterrupt) or issubclass(exc_type, anyio.get_cancelled_exc_class())
            )
            self._clear()
            if interrupted:
                self._write(f"{self.interrupted_line()}\n")
                _INTERRUPT_SAID[0] = True
            # A clean end is told by the CLI from the job's report (final_line, summary_table); a
            # failed run by its error line: either way no "done" line here.
        return None

    def interrupted_line(self) -> str:
        """``upload interrupted at 89/1,000: run the same command again to resume``."""
        total = self.total
        where = f"{self.done:,}/{total:,}" if total is not None else f"{self.done:,} done"
        return f"{self.label} interrupted at {where}: {RESUME_HINT}"

    def _clear(self) -> None:
        if self.tty and self._last_len:
            # A few more blanks than the bar: the terminal may have echoed "^C" after it.
            self._write("\r" + " " * (self._last_len + 3) + "\r")
            self._last_len = 0


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


#: Statuses of a report's counts, as the table and the final line name them.
_WORDS = {"unchanged": "already done"}


def _figures(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The end-of-run figures, formatted once for both the final line and the table.

    ``counts`` are this run's outcomes; what a previous run finished (the jobs' ``extra.unchanged``,
    not part of ``counts``) is the ``already done`` row.
    """
    counts = {str(k): int(v) for k, v in dict(stats.get("counts") or {}).items() if v}
    extra = stats.get("extra") or {}
    # upload/export/migrate say "unchanged", predict "already_done": neither is part of counts.
    already = int(extra.get("unchanged") or extra.get("already_done") or 0) if isinstance(extra, Mapping) else 0
    if already:
        counts["unchanged"] = counts.get("unchanged", 0) + already
    throughput = stats.get("throughput") or {}
    elapsed = stats.get("elapsed_s", stats.get("elapsed"))
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "elapsed": "-" if elapsed is None else f"{float(elapsed):.1f} s",
        "images/s": _number(throughput.get("images_per_s", stats.get("images_per_s")), ".1f"),
        "MB/s": _number(throughput.get("mb_per_s", stats.get("mb_per_s")), ".2f"),
        "retries": str(stats.get("retries", 0) or 0),
        "429s": str(stats.get("throttled_429", stats.get("throttled", 0)) or 0),
    }


def _ordered(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def final_line(label: str, stats: Mapping[str, Any]) -> str:
    """The last progress line of a clean run, from the job's report (the figures of :func:`summary_table`):
    ``upload done: 20 files in 0.8 s (uploaded 17, already done 2, failed 1)  24.2 images/s  5.11 MB/s``."""
    f = _figures(stats)
    parts = ", ".join(f"{_WORDS.get(name, name)} {n:,}" for name, n in _ordered(f["counts"]))
    files = "file" if f["total"] == 1 else "files"
    head = f"{label} done: {f['total']:,} {files} in {f['elapsed']}" + (f" ({parts})" if parts else "")
    ways = _ways(stats)
    return f"{head}  {f['images/s']} images/s  {f['MB/s']} MB/s" + (f"  (sent {ways})" if ways else "")


#: How images from a container went (the report's ``extra.source.sent``), in this order.
_WAYS = (
    ("by_url", "by URL"),
    ("as_bytes", "as bytes"),
    ("fixed_as_bytes", "fixed as bytes"),
    ("url_fallback_to_bytes", "as bytes after the service could not fetch them"),
)


def _ways(stats: Mapping[str, Any]) -> str:
    """``3 by URL, 5 fixed as bytes`` for a run from a container ("" for a folder): a by-URL run moves no
    image byte through cvbulk, so its MB/s is 0 on purpose."""
    extra = stats.get("extra")
    source = extra.get("source") if isinstance(extra, Mapping) else None
    sent = source.get("sent") if isinstance(source, Mapping) else None
    if not isinstance(sent, Mapping):
        return ""
    return ", ".join(f"{int(sent[key]):,} {words}" for key, words in _WAYS if sent.get(key))


def summary_table(stats: Mapping[str, Any]) -> str:
    """The end-of-run table: files per status, then elapsed, images/s, MB/s, retries, 429s.

    Takes a report from :func:`cvbulk.pipeline.report.build_report`, or a flat dict with
    ``counts``, ``elapsed_s``, ``images_per_s``, ``mb_per_s``, ``retries``, ``throttled``.
    """
    f = _figures(stats)
    rows: list[tuple[str, str]] = [(_WORDS.get(status, status), f"{n:,}") for status, n in _ordered(f["counts"])]
    rows.append(("total", f"{f['total']:,}"))
    tail = [(name, f[name]) for name in ("elapsed", "images/s", "MB/s", "retries", "429s")]
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
