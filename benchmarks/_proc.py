"""Child processes measured from the outside: wall time, CPU seconds (user + system) and peak RSS.

``os.wait4`` gives the CPU time of exactly the child that was waited for, so nothing of the benchmark's
own process leaks into a figure; the peak RSS is the child's VmHWM, read every 50 ms while it runs. A sampler callback runs every ``interval`` seconds while the child
lives (throughput over time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChildResult", "run_child", "proc_cpu_seconds", "Samples"]

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Samples:
    """(seconds since start, count) pairs."""

    points: list[tuple[float, int]] = field(default_factory=list)

    def add(self, t: float, n: int) -> None:
        self.points.append((round(t, 3), int(n)))


@dataclass
class ChildResult:
    argv: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    stdout: str
    stderr: str
    samples: Samples
    timed_out: bool = False
    threads: dict[str, float] = field(default_factory=dict)  # CPU seconds: "main" and "other threads"

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def check(self, what: str) -> "ChildResult":
        if self.returncode not in (0, 1) or self.timed_out:
            tail = "\n".join(self.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{what} failed (exit {self.returncode}, timed out={self.timed_out}):\n{tail}")
        return self


def run_child(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1800.0,
    sample: Callable[[], int] | None = None,
    interval: float = 0.5,
    workdir: Path | None = None,
    threads: bool = False,
) -> ChildResult:
    """Run ``argv`` to its end; stdout and stderr go to files (no pipe can fill up and stall it)."""
    workdir = workdir or Path(cwd or ".")
    workdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = workdir / "child.stdout", workdir / "child.stderr"
    samples = Samples()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        next_sample = started
        timed_out = False
        per_thread: dict[int, float] = {}
        next_threads = started
        next_hwm = started
        hwm_kb = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            now = time.perf_counter()
            if pid:
                break
            if now >= next_hwm:
                hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
                next_hwm = now + 0.05
            if threads and now >= next_threads:
                _thread_cpu(proc.pid, per_thread)
                next_threads = now + 0.25
            if sample is not None and now >= next_sample:
                try:
                    samples.add(now - started, sample())
                except Exception:  # noqa: BLE001 - a missed sample is not a failed run
                    pass
                next_sample += interval
            if now - started > timeout and not timed_out:
                timed_out = True
                proc.send_signal(signal.SIGKILL)
            time.sleep(0.02)
        wall = now - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if sample is not None:
        try:
            samples.add(wall, sample())
        except Exception:  # noqa: BLE001
            pass
    return ChildResult(
        argv=list(argv), returncode=proc.returncode, wall_s=wall, user_s=usage.ru_utime, sys_s=usage.ru_stime,
        maxrss_mb=hwm_kb / 1024.0, stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"), samples=samples, timed_out=timed_out,
        threads=_split(proc.pid, per_thread) if threads else {},
    )


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM). Not ``ru_maxrss``: on Linux that keeps the high-water
    mark of the memory the child had *before* exec, i.e. the harness's own size after the fork."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _thread_cpu(pid: int, seen: dict[int, float]) -> None:
    """The CPU seconds of each thread of ``pid`` so far (a thread's last reading stands after it ends)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            seen[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, ValueError, IndexError):
            pass


def _split(pid: int, seen: dict[int, float]) -> dict[str, float]:
    main = seen.get(pid, 0.0)
    return {"main": round(main, 2), "other threads": round(sum(v for k, v in seen.items() if k != pid), 2),
            "threads seen": len(seen)}


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    # after the command name: state is field 3, utime 14, stime 15 (1-based over the whole line)
    return (int(fields[11]) + int(fields[12])) / _TICK


def child_env(extra: dict[str, Any] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONBREAKPOINT", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env
