"""The emulator as a separate process (``python -m cvbulk emulator``), so that it never shares the
measured client's event loop, GIL or CPU accounting; plus a reader of its image count over time."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvbulk.client import parse_timestamp

from ._proc import proc_cpu_seconds

__all__ = ["LatencyModel", "EmulatorProcess", "NO_LATENCY"]

_LINE = re.compile(
    r"listening on (?P<endpoint>\S+)\s+training-key=(?P<tkey>\S+)\s+prediction-key=(?P<pkey>\S+)\s+"
    r"prediction-resource-id=(?P<rid>\S+)"
)


@dataclass(frozen=True)
class LatencyModel:
    """What the emulator adds to each answer: per request + per image + per MB of request body."""

    per_request: float = 0.0
    per_image: float = 0.0
    per_mb: float = 0.0

    def seconds(self, images: int, mb: float) -> float:
        return self.per_request + self.per_image * images + self.per_mb * mb

    def describe(self) -> str:
        if not (self.per_request or self.per_image or self.per_mb):
            return "none"
        return f"{self.per_request:g} s per request + {self.per_image:g} s per image + {self.per_mb:g} s per MB"

    def as_dict(self) -> dict[str, float]:
        return {"per_request_s": self.per_request, "per_image_s": self.per_image, "per_mb_s": self.per_mb}


NO_LATENCY = LatencyModel()


class EmulatorProcess:
    """``with EmulatorProcess(tier="S0", latency=...) as emu:`` a fresh emulator with its own data folder."""

    def __init__(self, *, tier: str = "unlimited", latency: LatencyModel = NO_LATENCY, workdir: Path | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.tier = tier
        self.latency = latency
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cvbulk-bench-emu-"))
        self.data_dir = self.workdir / "data"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = self.training_key = self.prediction_key = self.prediction_resource_id = ""
        self.cpu_at_stop: float | None = None
        self.maxrss_mb: float | None = None
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> "EmulatorProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "cvbulk", "emulator", "--port", "0", "--tier", self.tier,
            "--data", str(self.data_dir),
            "--latency", str(self.latency.per_request), "--latency-per-image", str(self.latency.per_image),
            "--latency-per-mb", str(self.latency.per_mb), *self.extra_args,
        ]
        self._stderr = open(self.workdir / "emulator.stderr", "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode(errors="replace")
        m = _LINE.search(line)
        if not m:
            self.stop()
            err = (self.workdir / "emulator.stderr").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the emulator did not start: {line!r}\n{err}")
        self.endpoint, self.training_key = m["endpoint"], m["tkey"]
        self.prediction_key, self.prediction_resource_id = m["pkey"], m["rid"]

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        if self.cpu_at_stop is not None:
            return self.cpu_at_stop
        return proc_cpu_seconds(self.proc.pid)

    # -- what the service holds, read from its own database (read-only, no API call, no rate token) --

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            path = self.data_dir / "emulator.sqlite3"
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0, check_same_thread=False)
        return self._db

    def last_seq(self) -> int:
        """A mark: images created after it are counted by ``image_count(since=mark)``."""
        return int(self._conn().execute("SELECT coalesce(max(seq), 0) FROM images").fetchone()[0])

    def image_count(self, since: int = 0) -> int:
        return int(self._conn().execute("SELECT count(*) FROM images WHERE seq > ?", (since,)).fetchone()[0])

    def image_times(self, since: int = 0) -> list[float]:
        """Creation time of every image created after the mark (epoch seconds), in order."""
        rows = self._conn().execute("SELECT created FROM images WHERE seq > ? ORDER BY created", (since,)).fetchall()
        return [parse_timestamp(r[0]).timestamp() for r in rows]

    def env(self, *, prediction: bool = False) -> dict[str, str]:
        env = {"VISION_TRAINING_ENDPOINT": self.endpoint, "VISION_TRAINING_KEY": self.training_key}
        if prediction:
            env.update({"VISION_PREDICTION_ENDPOINT": self.endpoint, "VISION_PREDICTION_KEY": self.prediction_key,
                        "VISION_PREDICTION_RESOURCE_ID": self.prediction_resource_id})
        return env

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.cpu_at_stop = proc_cpu_seconds(self.proc.pid)
            except OSError:
                pass
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.maxrss_mb = usage.ru_maxrss / 1024.0
                    break
                time.sleep(0.05)
            else:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def describe(emu: EmulatorProcess) -> dict[str, Any]:
    return {"tier": emu.tier, "latency": emu.latency.as_dict()}
