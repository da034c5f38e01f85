"""One measured run of one client against one fresh emulator process.

Every client runs as its own child process (cvbulk's CLI, or ``benchmarks.sdk_baseline``), so that its
wall time, CPU seconds and peak RSS are its own and it never shares a GIL or an event loop with the
emulator or with the harness.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._data import Tree
from ._emulator import EmulatorProcess
from ._proc import ChildResult, child_env, run_child

__all__ = ["Run", "cvbulk_upload", "sdk_upload", "cvbulk_predict", "sdk_predict", "rate_between", "prepare_model"]

Run = dict[str, Any]


def rate_between(points: list[tuple[float, int]], total: int, lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Items/s between the moments ``lo`` and ``hi`` of ``total`` were done: the sustained rate,
    free of start-up and of the last requests' tail."""
    if total <= 0 or not points:
        return None
    a = b = None
    for t, n in points:
        if a is None and n >= lo * total:
            a = (t, n)
        if b is None and n >= hi * total:
            b = (t, n)
            break
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


def _emulator_points(emu: EmulatorProcess, t0_epoch: float, since: int) -> list[tuple[float, int]]:
    times = emu.image_times(since)
    return [(t - t0_epoch, i + 1) for i, t in enumerate(times)]


def _base(client: str, child: ChildResult, emu_cpu: float | None) -> Run:
    return {
        "client": client, "wall_s": round(child.wall_s, 3), "cpu_s": round(child.cpu_s, 3),
        "user_s": round(child.user_s, 3), "sys_s": round(child.sys_s, 3),
        "maxrss_mb": round(child.maxrss_mb, 1), "emulator_cpu_s": None if emu_cpu is None else round(emu_cpu, 3),
        "returncode": child.returncode,
    }


def _series(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    return [(round(t, 2), n) for t, n in points]


def cvbulk_upload(emu: EmulatorProcess, tree: Tree, work: Path, *, label: str = "cvbulk", tier: str = "S0",
                  args: tuple[str, ...] = (), dry_run: bool = False, timeout: float = 1800,
                  threads: bool = False, library: bool = False) -> Run:
    """``cvbulk upload ROOT --project NEW --create --tier TIER`` as a child process (``library``: the same
    through ``run_upload`` in ``benchmarks.cvbulk_child``, for options the command line lacks)."""
    work.mkdir(parents=True, exist_ok=True)
    if library:
        argv = [sys.executable, "-m", "benchmarks.cvbulk_child", str(tree.root)]
    else:
        argv = [sys.executable, "-m", "cvbulk", "upload", str(tree.root), "--create"]
    argv += ["--project", f"bench-{work.name}", "--tier", tier, "--state", str(work / "state.sqlite"),
             "--report", str(work / "report.json"), *args]
    if dry_run:
        argv.append("--dry-run")
    import time

    cpu0 = emu.cpu_seconds()
    t0 = time.time()
    mark = 0 if dry_run else emu.last_seq()
    child = run_child(argv, env=child_env(emu.env()), workdir=work, timeout=timeout,
                      cwd=Path(__file__).resolve().parent.parent if library else None,
                      sample=None if dry_run else (lambda: emu.image_count(mark)), threads=threads)
    child.check(label)
    run = _base(label, child, emu.cpu_seconds() - cpu0)
    if threads:
        run["thread_cpu_s"] = child.threads
    if dry_run:
        run.update(files=tree.count, images=tree.count)
        return run
    report = json.loads((work / "report.json").read_text())
    stats = report.get("client") or {}
    points = _emulator_points(emu, t0, mark)
    run.update(
        files=tree.count, images=len(points), failed=report.get("failed", 0),
        throttled=stats.get("throttled", 0), retries=stats.get("retries", 0), lost=0,
        requests=stats.get("requests"), latency_ms=stats.get("latency_ms"),
        concurrency=(report.get("extra") or {}).get("concurrency"),
        sustained_ips=rate_between(points, len(points)), e2e_ips=len(points) / child.wall_s,
        series=_series(child.samples.points),
    )
    return run


def sdk_upload(emu: EmulatorProcess, tree: Tree, work: Path, *, threads: int = 1, retry_429: bool = False,
               limit: int | None = None, label: str = "sdk", timeout: float = 1800) -> Run:
    work.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "benchmarks.sdk_baseline", "upload", str(tree.root), "--result",
            str(work / "result.json"), "--threads", str(threads)]
    if retry_429:
        argv.append("--retry-429")
    if limit:
        argv += ["--limit", str(limit)]
    import time

    cpu0 = emu.cpu_seconds()
    t0 = time.time()
    mark = emu.last_seq()
    child = run_child(argv, env=child_env(emu.env()), workdir=work, timeout=timeout,
                      sample=lambda: emu.image_count(mark),
                      cwd=Path(__file__).resolve().parent.parent)
    child.check(label)
    run = _base(label, child, emu.cpu_seconds() - cpu0)
    result = json.loads((work / "result.json").read_text())
    points = _emulator_points(emu, t0, mark)
    run.update(
        files=result["files"], images=len(points), failed=result["failed"], lost=result["lost"],
        throttled=result["throttled"], retries=result["retries"], statuses=result["statuses"],
        latency_ms=result["latency_ms"], sustained_ips=rate_between(points, len(points)),
        e2e_ips=len(points) / child.wall_s, series=_series(child.samples.points),
    )
    return run


def prepare_model(emu: EmulatorProcess, tree: Tree, work: Path, published_name: str = "bench") -> str:
    """Upload a small labelled set with cvbulk, train, publish: the project id, ready to score."""
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(emu.env(prediction=True))
    name = f"bench-model-{work.name}"
    steps = [
        ["upload", str(tree.root), "--project", name, "--create", "--tier", emu.tier,
         "--state", str(work / "train.sqlite"), "--report", str(work / "train.json")],
        ["train", "--project", name, "--wait"],
        ["publish", "--project", name, "--name", published_name],
        ["projects", "list", "--json"],
    ]
    out = ""
    for i, step in enumerate(steps):
        child = run_child([sys.executable, "-m", "cvbulk", *step], env=env, workdir=work / f"step{i}", timeout=600)
        if child.returncode != 0:
            raise RuntimeError(f"cvbulk {step[0]} failed: {child.stderr[-1500:]}")
        out = child.stdout
    for project in _json_list(out):
        if project.get("name") == name:
            return project["id"]
    raise RuntimeError(f"project {name} not found after publishing: {out[:500]}")


def _json_list(text: str) -> list[dict[str, Any]]:
    data = json.loads(text)
    if isinstance(data, dict):
        for key in ("projects", "items", "value"):
            if isinstance(data.get(key), list):
                return data[key]
    return data if isinstance(data, list) else []


def _csv_rows(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return max(0, fh.read().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def cvbulk_predict(emu: EmulatorProcess, tree: Tree, work: Path, project_id: str, *, published_name: str = "bench",
                   label: str = "cvbulk", args: tuple[str, ...] = (), timeout: float = 1800) -> Run:
    work.mkdir(parents=True, exist_ok=True)
    output = work / "predictions.csv"
    argv = [sys.executable, "-m", "cvbulk", "predict", str(tree.root), "--project", project_id, "--published-name",
            published_name, "--output", str(output), "--tier", emu.tier, "--report", str(work / "report.json"), *args]
    env = child_env(emu.env(prediction=True))
    env.pop("VISION_TRAINING_KEY", None)  # score with the prediction key alone, as a nightly job would
    env.pop("VISION_TRAINING_ENDPOINT", None)
    cpu0 = emu.cpu_seconds()
    child = run_child(argv, env=env, workdir=work, timeout=timeout, sample=lambda: _csv_rows(output))
    child.check(label)
    run = _base(label, child, emu.cpu_seconds() - cpu0)
    report = json.loads((work / "report.json").read_text())
    stats = report.get("client") or {}
    done = report.get("succeeded", 0)
    run.update(
        files=tree.count, images=done, failed=report.get("failed", 0), lost=0,
        throttled=stats.get("throttled", 0), retries=stats.get("retries", 0), latency_ms=stats.get("latency_ms"),
        sustained_ips=rate_between(child.samples.points, tree.count), e2e_ips=done / child.wall_s,
        series=_series(child.samples.points),
    )
    return run


def sdk_predict(emu: EmulatorProcess, tree: Tree, work: Path, project_id: str, *, published_name: str = "bench",
                threads: int = 1, retry_429: bool = False, limit: int | None = None, label: str = "sdk",
                timeout: float = 1800) -> Run:
    work.mkdir(parents=True, exist_ok=True)
    progress = work / "progress"
    progress.write_bytes(b"")
    argv = [sys.executable, "-m", "benchmarks.sdk_baseline", "predict", str(tree.root), "--project", project_id,
            "--published-name", published_name, "--result", str(work / "result.json"), "--progress", str(progress),
            "--threads", str(threads)]
    if retry_429:
        argv.append("--retry-429")
    if limit:
        argv += ["--limit", str(limit)]
    cpu0 = emu.cpu_seconds()
    child = run_child(argv, env=child_env(emu.env(prediction=True)), workdir=work, timeout=timeout,
                      sample=lambda: progress.stat().st_size, cwd=Path(__file__).resolve().parent.parent)
    child.check(label)
    run = _base(label, child, emu.cpu_seconds() - cpu0)
    result = json.loads((work / "result.json").read_text())
    run.update(
        files=result["files"], images=result["ok"], failed=result["failed"], lost=result["lost"],
        throttled=result["throttled"], retries=result["retries"], statuses=result["statuses"],
        latency_ms=result["latency_ms"], sustained_ips=rate_between(child.samples.points, result["files"]),
        e2e_ips=result["ok"] / child.wall_s, series=_series(child.samples.points),
    )
    return run


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"cvbulk-bench-{prefix}-"))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
