"""Upload and predict from a blob container by URL (Azurite + the emulator as separate processes).

    python -m benchmarks.blob_upload                         # 6,400 photos to upload, 1,200 to score
    python -m benchmarks.blob_upload --upload 1280 --predict 200 --json /tmp/blob_upload.json
    python -m benchmarks.blob_upload --instructions 1280          # and the client's instructions per image

1. Starts Azurite (in memory, a free loopback port) and puts the benchmark's photo tree (``_data.make_tree``:
   JPEG/PNG photos) into containers, tags as virtual folders: the ~99 % that pass the header check as they are
   (``pass_through_view``: what goes by URL) in one, the ~1 % that need a fix in another.
2. Upload: ``cvbulk upload az://CONTAINER/ --via url`` at S0 (10 calls/s) with the latency model of the other
   scenarios, against the emulator in its own process; the emulator fetches each image from Azurite itself.
   Ceiling: 10 calls/s x 64 images = 640 images/s. Measured: sustained images/s (10 %-90 % of the images, from
   the emulator's creation times), the client's CPU per image by URL (``os.wait4`` of the child, less the CPU
   of a 64-image run: start-up and imports are not per image), bytes read from storage per image (the report).
   Then the images that need a fix, on their own: the client's CPU per fixed image (download, decode, resize,
   encode), which a run with 1 % of them adds to the by-URL figure as 1 % of it.
3. Predict: a model trained and published on the emulator, then ``cvbulk predict az://CONTAINER/ --via url`` at
   S0 without store (20 predictions/s): predictions/s vs 20, CPU per image, bytes read per image.
4. Azurite's floor: its CPU for each request an image costs it, measured alone on 600 of the blobs (the header
   read, 8 KB pipelined as cvbulk reads it; the service's fetch of the whole blob; the listing's share of a page):
   the fastest its one thread could serve images, whatever the client and the machine.
5. With ``--instructions N``: the client's instructions per image by URL, counted by valgrind (callgrind) over an
   unthrottled upload of N images less one of 64, and over an unthrottled predict of the ``--predict`` blobs less
   one of 20: figures a busy machine does not change (CPU seconds do).
6. For each: the CPU per image of the client, the emulator and Azurite (each a process of its own, measured
   from outside), the cores each kept busy, the load average before and after, and which side limited the rate
   (``limited_by``): one near a whole core (Azurite and the client each do their work on one thread), the
   machine's cores, or the service's rate limit. On a shared machine trust the CPU per image and the bytes read
   per image over the images/s. ``speed_at_start`` / ``machine.speed_at_end``: the CPU time of two fixed workloads
   (``_machine.reference_speed``), so figures of different days can be compared.

The connection string reaches the children in their environment, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from ._clients import prepare_model, rate_between
from ._data import make_tree, pass_through_view
from ._emulator import EmulatorProcess
from ._machine import reference_speed
from ._proc import child_env, proc_cpu_seconds, run_child
from .scenarios import BATCH, LATENCY, S0_PREDICTION_NOSTORE_TPS, S0_TRAINING_TPS

ROOT = Path(__file__).resolve().parent.parent
SCORE_SMALL = 20  # blobs of the small predict run (its CPU is start-up, subtracted from the big run's)


async def _fill(connection_string: str, container: str, files: list[tuple[str, Path]]) -> float:
    from azure.storage.blob.aio import BlobServiceClient

    started = time.perf_counter()
    limiter = anyio.CapacityLimiter(32)
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        await client.create_container()

        async def put(name: str, path: Path) -> None:
            async with limiter:
                await client.upload_blob(name, path.read_bytes(), overwrite=True)

        async with anyio.create_task_group() as tg:
            for name, path in files:
                tg.start_soon(put, name, path)
    return time.perf_counter() - started


async def _azurite_floor(connection_string: str, container: str, names: list[str], pid: int) -> dict[str, Any]:
    """Azurite's CPU per image for each request an image by URL costs it, each kind measured on its own."""
    from datetime import datetime, timedelta, timezone

    import aiohttp
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from azure.storage.blob.aio import BlobServiceClient

    from cvbulk.storage import parse_connection_string
    from cvbulk.storage._ranged import RangedReader

    settings = parse_connection_string(connection_string)
    token = generate_container_sas(
        settings.account_name, container, account_key=settings.account_key or "",
        permission=ContainerSasPermissions(read=True, list=True), expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        etags = {b.name: b.etag async for b in client.list_blobs()}
        base = client.url
    urls = [(f"{base}/{name}?{token}", etags[name] if etags[name].startswith('"') else f'"{etags[name]}"') for name in names]

    async def header_reads() -> None:
        reader = RangedReader(connect_timeout=10, read_timeout=60)
        for k in range(0, len(urls), BATCH):
            await reader.get_many([(url, 0, 8192, etag) for url, etag in urls[k : k + BATCH]])
        await reader.aclose()

    async def whole_blobs() -> None:  # as the service fetches an image: the whole blob, a few at once
        limiter = anyio.CapacityLimiter(16)
        async with aiohttp.ClientSession() as session:

            async def one(url: str) -> None:
                async with limiter, session.get(url) as answer:
                    await answer.read()

            async with anyio.create_task_group() as tg:
                for url, _ in urls:
                    tg.start_soon(one, url)

    async def listing() -> None:  # pages of 1,000, as cvbulk lists
        url = f"{base}?restype=container&comp=list&maxresults=1000&{token}"
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            await answer.read()

    out: dict[str, Any] = {"blobs": len(urls)}
    for what, work, per in (
        ("header_read_ms", header_reads, len(urls)),
        ("service_fetch_ms", whole_blobs, len(urls)),
        ("listing_ms", listing, min(1000, len(etags))),
    ):
        before = proc_cpu_seconds(pid)
        await work()
        out[what] = round((proc_cpu_seconds(pid) - before) * 1000 / per, 3)
    out["per_image_ms"] = round(out["header_read_ms"] + out["service_fetch_ms"] + out["listing_ms"], 3)
    out["max_images_per_s"] = round(1000 / out["per_image_ms"], 1)  # its one thread, nothing else on it
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _files(root: Path, limit: int | None = None) -> list[tuple[str, Path]]:
    out = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    return out[:limit] if limit else out


class _Others:
    """CPU seconds of the emulator and of Azurite (and the load average) around one client run."""

    def __init__(self, emu: EmulatorProcess, azurite_pid: int) -> None:
        self.emu, self.azurite_pid = emu, azurite_pid

    def __enter__(self) -> _Others:
        self.load_before = [round(x, 2) for x in os.getloadavg()]
        self.emu0, self.az0 = self.emu.cpu_seconds(), proc_cpu_seconds(self.azurite_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.emu_s = self.emu.cpu_seconds() - self.emu0
        self.azurite_s = proc_cpu_seconds(self.azurite_pid) - self.az0
        self.load_after = [round(x, 2) for x in os.getloadavg()]

    def figures(self) -> dict[str, Any]:
        return {"emulator_cpu_s": round(self.emu_s, 2), "azurite_cpu_s": round(self.azurite_s, 2),
                "load_average_before": self.load_before, "load_average_after": self.load_after}


def _upload(emu: EmulatorProcess, where: str, env: dict[str, str], work: Path, name: str, azurite_pid: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    report_path = work / "report.json"
    argv = [sys.executable, "-m", "cvbulk", "upload", where, "--project", name, "--create", "--tier", "S0",
            "--via", "url", "--state", str(work / "state.sqlite"), "--report", str(report_path), "--progress", "none"]
    mark = emu.last_seq()
    t0 = time.time()
    with _Others(emu, azurite_pid) as others:
        child = run_child(argv, env=env, workdir=work, timeout=3600, sample=lambda: emu.image_count(mark)).check("upload")
    report = json.loads(report_path.read_text())
    times = emu.image_times(mark)
    points = [(t - t0, i + 1) for i, t in enumerate(times)]
    return {"images": len(times), "wall_s": child.wall_s, "cpu_s": child.cpu_s, "report": report,
            "sustained_ips": rate_between(points, len(points)), "e2e_ips": len(times) / child.wall_s,
            **others.figures()}


def _predict(emu: EmulatorProcess, where: str, env: dict[str, str], work: Path, project: str, azurite_pid: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "scores.csv"
    argv = [sys.executable, "-m", "cvbulk", "predict", where, "--project", project, "--published-name", "bench",
            "--output", str(out), "--tier", "S0", "--via", "url", "--report", str(work / "report.json"),
            "--progress", "none"]

    def rows() -> int:
        try:
            with open(out, "rb") as f:
                return max(0, sum(1 for _ in f) - 1)
        except OSError:
            return 0

    with _Others(emu, azurite_pid) as others:
        child = run_child(argv, env=env, workdir=work, timeout=3600, sample=rows, interval=0.25).check("predict")
    report = json.loads((work / "report.json").read_text())
    done = report.get("succeeded", 0)
    return {"images": done, "wall_s": child.wall_s, "cpu_s": child.cpu_s, "report": report,
            "sustained_ips": rate_between(child.samples.points, rows()), "e2e_ips": done / child.wall_s,
            **others.figures()}


def _sides(big: dict[str, Any], small: dict[str, Any], ceiling: float) -> dict[str, Any]:
    """CPU per image of each process (marginal: the big run less the small one), the cores each kept busy over
    the big run, and which one limited the rate: the one near a whole core (the client and Azurite each run
    their work on one thread), else the machine's cores all busy, else the service's rate limit."""
    extra = max(1, big["images"] - small["images"])
    rate = big["sustained_ips"] or 0.0
    out: dict[str, Any] = {}
    busy: dict[str, float] = {}
    for side, key in (("client", "cpu_s"), ("emulator", "emulator_cpu_s"), ("azurite", "azurite_cpu_s")):
        per_image_s = (big[key] - small[key]) / extra
        out[f"{side}_cpu_ms_per_image"] = round(1000 * per_image_s, 3)
        busy[side] = round(per_image_s * rate, 2)  # cores it kept busy at the sustained rate
    out["cores_busy"] = busy
    cores = os.cpu_count() or 1
    if rate >= 0.95 * ceiling:
        limit = "the service's rate limit (the ceiling is reached)"
    else:
        side, most = max(busy.items(), key=lambda kv: kv[1])
        if most >= 0.8:
            limit = f"{side} ({most} cores busy: its one thread is saturated)"
        elif sum(busy.values()) >= 0.85 * cores:
            limit = f"the machine's {cores} cores ({sum(busy.values()):.2f} busy: client, emulator and Azurite share them)"
        else:
            load = big["load_average_before"][0]
            limit = (f"none of the three saturated ({busy}): the machine's other load ({load} on {cores} cores)"
                     if load > cores else f"none saturated ({busy}): the service's latency")
    out["limited_by"] = limit
    return out


def _storage(run: dict[str, Any]) -> dict[str, Any]:
    source = (run["report"].get("extra") or {}).get("source") or {}
    storage = source.get("storage") or {}
    n = max(1, run["images"])
    return {"sent": source.get("sent"), "bytes_read_per_image": round(storage.get("bytes_read", 0) / n),
            "header_bytes_per_image": round(storage.get("header_bytes", 0) / n),
            "client_bytes_sent_per_image": round(((run["report"].get("client") or {}).get("bytes_sent") or 0) / n)}


def _failed_why(report: dict[str, Any]) -> dict[str, int]:
    """How many images failed for each reason (the report's failures, their blob names taken out): a figure
    beside failures says whether they were the storage's, the service's or cvbulk's."""
    reasons = Counter(re.sub(r"'[^']*'", "'...'", str(f.get("reason", ""))) for f in report.get("failures") or [])
    return dict(reasons.most_common(5))


def _figures(big: dict[str, Any], small: dict[str, Any], ceiling: float, *, e2e_digits: int) -> dict[str, Any]:
    """One job's figures: the big run's rates and counters, the marginal CPU of each side (big less small)."""
    return {
        "images": big["images"], "ceiling_ips": ceiling, "sustained_ips": big["sustained_ips"],
        "e2e_ips": round(big["e2e_ips"], e2e_digits), "wall_s": round(big["wall_s"], 1),
        "ratio_to_ceiling": round(big["sustained_ips"] / ceiling, 3) if big["sustained_ips"] else None,
        "client_cpu_s": round(big["cpu_s"], 2),
        "failed": big["report"].get("failed"), "failed_why": _failed_why(big["report"]),
        **_storage(big), **_sides(big, small, ceiling),
        "load_average_before": big["load_average_before"], "load_average_after": big["load_average_after"],
    }


def _instructions(env: dict[str, str], work: Path, args: list[str]) -> int:
    """The instructions the client runs for one unthrottled ``cvbulk`` run (valgrind's callgrind: every thread,
    user space only). A count, not a time: the same on a busy machine as on a quiet one."""
    work.mkdir(parents=True, exist_ok=True)
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work / 'callgrind.out'}", sys.executable,
            "-m", "cvbulk", *args]
    run_child(argv, env=env, workdir=work, timeout=3600).check(f"cvbulk {args[0]} under callgrind ({work.name})")
    found = re.search(r"Collected : (\d+)", (work / "child.stderr").read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind (see {work / 'child.stderr'})")
    return int(found.group(1))


def _instruction_figures(env: dict[str, str], location: Path, small_n: int, big_n: int) -> dict[str, Any]:
    """Instructions per image by URL: an upload of ``big_n`` less one of ``small_n`` (start-up is not per image)."""

    def upload(where: str, tag: str) -> int:
        work = location / tag
        return _instructions(env, work, ["upload", where, "--project", tag, "--create", "--via", "url",
                                         "--state", str(work / "state.sqlite"), "--report", str(work / "report.json"),
                                         "--progress", "none"])

    small, big = upload("az://small/", "ir-small"), upload("az://instr/", "ir-big")
    return {"images": big_n, "small_images": small_n, "small_instructions": small, "big_instructions": big,
            "instructions_per_image": round((big - small) / max(1, big_n - small_n))}


def _predict_instruction_figures(
    env: dict[str, str], location: Path, project: str, small_n: int, big_n: int
) -> dict[str, Any]:
    """Instructions per image of ``predict --via url``: a run over ``big_n`` blobs less one over ``small_n``."""

    def predict(where: str, tag: str) -> int:
        work = location / tag
        return _instructions(env, work, ["predict", where, "--project", project, "--published-name", "bench",
                                         "--output", str(work / "scores.csv"), "--via", "url",
                                         "--report", str(work / "report.json"), "--progress", "none"])

    small, big = predict("az://scoresmall/", "pir-small"), predict("az://score/", "pir-big")
    return {"images": big_n, "small_images": small_n, "small_instructions": small, "big_instructions": big,
            "instructions_per_image": round((big - small) / max(1, big_n - small_n))}


def _fix_figures(fixes: dict[str, Any], small: dict[str, Any], by_url: dict[str, Any]) -> dict[str, Any]:
    """The client's CPU per image that needed a fix: the run's CPU less its start-up (the 64-image run less
    its images at the by-URL rate), over its images; and what it read."""
    start_up = small["cpu_s"] - small["images"] * by_url["client_cpu_ms_per_image"] / 1000
    n = max(1, fixes["images"])
    sent = ((fixes["report"].get("extra") or {}).get("source") or {}).get("sent")
    return {"images": fixes["images"], "sent": sent, "failed": fixes["report"].get("failed"),
            "client_cpu_ms_per_image": round(1000 * (fixes["cpu_s"] - start_up) / n, 2),
            **{k: v for k, v in _storage(fixes).items() if k != "sent"}}


def _line(what: str, r: dict[str, Any]) -> str:
    """The figures a person reads first, one line."""
    return (f"{what}: {r['sustained_ips']:.1f} img/s sustained of {r['ceiling_ips']:g} ({100 * (r['ratio_to_ceiling'] or 0):.0f} %), "
            f"client {r['client_cpu_ms_per_image']} ms CPU/image (emulator {r['emulator_cpu_ms_per_image']}, "
            f"Azurite {r['azurite_cpu_ms_per_image']}), {r['bytes_read_per_image'] / 1024:.1f} KB read/image "
            f"(header {r['header_bytes_per_image'] / 1024:.1f} KB); limited by {r['limited_by']}; "
            f"load average {r['load_average_before']} -> {r['load_average_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blob_upload")
    parser.add_argument("--upload", type=int, default=6400, help="photos in the tree (default 6,400: ~99 %% go by URL)")
    parser.add_argument("--predict", type=int, default=1200,
                        help="photos to score (default 1,200: 60 s at 20/s, so start-up noise is small per image)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures there")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="also count the client's instructions per image by URL (valgrind; N images, e.g. 1280)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests._azurite import start_azurite

    tree = make_tree("photos", args.upload)
    everything = _files(tree.root)
    files = _files(pass_through_view(tree).root)  # what passes the header check: by URL
    passing = {name for name, _ in files}
    to_fix = [(name, path) for name, path in everything if name not in passing]
    location = Path(tempfile.mkdtemp(prefix="cvbulk-bench-blob-upload-"))
    server = start_azurite(location, in_memory=True)
    results: dict[str, Any] = {"tree": tree.describe(), "latency": LATENCY.as_dict(), "speed_at_start": reference_speed()}
    try:
        fill = anyio.run(_fill, server.connection_string, "photos", files)
        anyio.run(_fill, server.connection_string, "small", files[:BATCH])
        anyio.run(_fill, server.connection_string, "fixes", to_fix)
        if args.instructions:
            anyio.run(_fill, server.connection_string, "instr", files[: args.instructions])
        anyio.run(_fill, server.connection_string, "score", files[: args.predict])
        anyio.run(_fill, server.connection_string, "scoresmall", files[:SCORE_SMALL])
        print(f"filled: {len(files)} photos in {fill:.1f} s", file=sys.stderr)
        floor_names = [name for name, _ in files[:600]]
        results["azurite_floor"] = anyio.run(_azurite_floor, server.connection_string, "photos", floor_names, server.process.pid)
        print(f"azurite floor: {results['azurite_floor']}", file=sys.stderr)
        storage_env = {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
        with EmulatorProcess(tier="S0", latency=LATENCY, workdir=location / "emu") as emu:
            env = child_env({**emu.env(), **storage_env})
            pid = server.process.pid
            small = _upload(emu, "az://small/", env, location / "up-small", "blob-small", pid)
            big = _upload(emu, "az://photos/", env, location / "up-big", "blob-big", pid)
            ceiling = S0_TRAINING_TPS * BATCH
            results["upload"] = _figures(big, small, ceiling, e2e_digits=1)
            print(_line("upload", results["upload"]), file=sys.stderr)
            if to_fix:
                fixes = _upload(emu, "az://fixes/", env, location / "up-fixes", "blob-fixes", pid)
                results["upload_fixes"] = _fix_figures(fixes, small, results["upload"])
                print(f"fixes: {results['upload_fixes']}", file=sys.stderr)
        if args.instructions and shutil.which("valgrind"):
            with EmulatorProcess(workdir=location / "emu-ir") as emu:  # unthrottled: the count, not the rate
                env = child_env({**emu.env(), **storage_env})
                results["instructions"] = _instruction_figures(env, location, BATCH, min(args.instructions, len(files)))
                print(f"instructions: {results['instructions']}", file=sys.stderr)
        elif args.instructions:
            print("instructions: valgrind is not installed, not counted", file=sys.stderr)
        with EmulatorProcess(tier="S0", latency=LATENCY, workdir=location / "emu2") as emu:
            project = prepare_model(emu, make_tree("photos", 64, seed=5), location / "model")
            env = child_env({**emu.env(prediction=True), **storage_env})
            env.pop("VISION_TRAINING_KEY", None)
            env.pop("VISION_TRAINING_ENDPOINT", None)
            pid = server.process.pid
            small = _predict(emu, "az://scoresmall/", env, location / "pr-small", project, pid)
            big = _predict(emu, "az://score/", env, location / "pr-big", project, pid)
            ceiling = S0_PREDICTION_NOSTORE_TPS
            results["predict"] = _figures(big, small, ceiling, e2e_digits=2)
            print(_line("predict", results["predict"]), file=sys.stderr)
        if args.instructions and shutil.which("valgrind"):
            with EmulatorProcess(workdir=location / "emu-pir") as emu:  # unthrottled: the count, not the rate
                project = prepare_model(emu, make_tree("photos", 64, seed=5), location / "model-ir")
                env = child_env({**emu.env(prediction=True), **storage_env})
                results["predict_instructions"] = _predict_instruction_figures(
                    env, location, project, SCORE_SMALL, args.predict
                )
                print(f"predict instructions: {results['predict_instructions']}", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(location, ignore_errors=True)  # ~2.5 GB: the emulator's images and Azurite's log
    results["machine"] = {"cores": os.cpu_count(), "loadavg": os.getloadavg(), "speed_at_end": reference_speed()}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
