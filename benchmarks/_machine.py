"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["machine_info", "load_average", "reference_speed"]


def _meminfo_gb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def reference_speed() -> dict[str, float]:
    """The CPU time of two fixed workloads, best of five: a pure-Python loop and a Pillow JPEG decode, resize
    and encode. A shared VM's speed moves from day to day; these say how fast it was when the figures beside
    them were taken, so runs of different days can be compared (a figure twice as high on a machine twice as
    slow is no regression). On this 2-core VM, idle, the loop's best of five moves between ~57 and ~90 ms from
    one call to the next."""
    import io
    import time

    from PIL import Image

    def python_loop() -> None:
        total = 0
        for i in range(1_000_000):
            total += i * i

    source = io.BytesIO()
    Image.new("RGB", (1600, 1200), (120, 160, 200)).save(source, "JPEG", quality=90)
    data = source.getvalue()

    def pillow() -> None:
        with Image.open(io.BytesIO(data)) as img:
            img.convert("RGB").resize((800, 600)).save(io.BytesIO(), "JPEG", quality=85)

    out = {}
    for name, work in (("python_loop_ms", python_loop), ("pillow_ms", pillow)):
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            work()
            best = min(best, time.process_time() - started)
        out[name] = round(best * 1000, 1)
    return out


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": _meminfo_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": {name: _version(name) for name in (
            "cvbulk", "aiohttp", "anyio", "pillow", "azure-cognitiveservices-vision-customvision", "msrest", "requests")},
        "load_average_at_start": load_average(),
    }
