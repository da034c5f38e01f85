"""Upload and predict from a blob container by URL (Azurite + the emulator as separate processes).

    python -m benchmarks.blob_upload                         # 6,400 photos to upload, 600 to score
    python -m benchmarks.blob_upload --upload 1280 --predict 200 --json /tmp/blob_upload.json

1. Starts Azurite (in memory, a free loopback port) and puts the benchmark's photo tree (``_data.make_tree``:
   JPEG/PNG photos, ~1 % that need a fix) into a container, tags as virtual folders.
2. Upload: ``cvbulk upload az://CONTAINER/ --via url`` at S0 (10 calls/s) with the latency model of the other
   scenarios, against the emulator in its own process; the emulator fetches each image from Azurite itself.
   Ceiling: 10 calls/s x 64 images = 640 images/s. Measured: sustained images/s (10 %-90 % of the images, from
   the emulator's creation times), the client's CPU per image (``os.wait4`` of the child, less the CPU of a
   64-image run: start-up and imports are not per image), bytes read from storage per image (the report).
3. Predict: a model trained and published on the emulator, then ``cvbulk predict az://CONTAINER/ --via url`` at
   S0 without store (20 predictions/s): predictions/s vs 20, CPU per image, bytes read per image.

The connection string reaches the children in their environment, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from ._clients import prepare_model, rate_between
from ._data import make_tree
from ._emulator import EmulatorProcess
from ._proc import child_env, run_child
from .scenarios import BATCH, LATENCY, S0_PREDICTION_NOSTORE_TPS, S0_TRAINING_TPS

ROOT = Path(__file__).resolve().parent.parent


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


def _files(root: Path, limit: int | None = None) -> list[tuple[str, Path]]:
    out = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    return out[:limit] if limit else out


def _upload(emu: EmulatorProcess, where: str, env: dict[str, str], work: Path, name: str) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    report_path = work / "report.json"
    argv = [sys.executable, "-m", "cvbulk", "upload", where, "--project", name, "--create", "--tier", "S0",
            "--via", "url", "--state", str(work / "state.sqlite"), "--report", str(report_path), "--progress", "none"]
    mark = emu.last_seq()
    t0 = time.time()
    child = run_child(argv, env=env, workdir=work, timeout=3600, sample=lambda: emu.image_count(mark)).check("upload")
    report = json.loads(report_path.read_text())
    times = emu.image_times(mark)
    points = [(t - t0, i + 1) for i, t in enumerate(times)]
    return {"images": len(times), "wall_s": child.wall_s, "cpu_s": child.cpu_s, "report": report,
            "sustained_ips": rate_between(points, len(points)), "e2e_ips": len(times) / child.wall_s}


def _predict(emu: EmulatorProcess, where: str, env: dict[str, str], work: Path, project: str) -> dict[str, Any]:
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

    child = run_child(argv, env=env, workdir=work, timeout=3600, sample=rows, interval=0.25).check("predict")
    report = json.loads((work / "report.json").read_text())
    done = report.get("succeeded", 0)
    return {"images": done, "wall_s": child.wall_s, "cpu_s": child.cpu_s, "report": report,
            "sustained_ips": rate_between(child.samples.points, rows()), "e2e_ips": done / child.wall_s}


def _per_image(big: dict[str, Any], small: dict[str, Any]) -> float | None:
    extra = big["images"] - small["images"]
    return round(1000 * (big["cpu_s"] - small["cpu_s"]) / extra, 3) if extra > 0 else None


def _storage(run: dict[str, Any]) -> dict[str, Any]:
    source = (run["report"].get("extra") or {}).get("source") or {}
    storage = source.get("storage") or {}
    n = max(1, run["images"])
    return {"sent": source.get("sent"), "bytes_read_per_image": round(storage.get("bytes_read", 0) / n),
            "header_bytes_per_image": round(storage.get("header_bytes", 0) / n),
            "client_bytes_sent_per_image": round(((run["report"].get("client") or {}).get("bytes_sent") or 0) / n)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blob_upload")
    parser.add_argument("--upload", type=int, default=6400, help="photos to upload (default 6,400)")
    parser.add_argument("--predict", type=int, default=600, help="photos to score (default 600)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures there")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests._azurite import start_azurite

    tree = make_tree("photos", args.upload)
    files = _files(tree.root / "images" if (tree.root / "images").is_dir() else tree.root)
    location = Path(tempfile.mkdtemp(prefix="cvbulk-bench-blob-upload-"))
    server = start_azurite(location, in_memory=True)
    results: dict[str, Any] = {"tree": tree.describe(), "latency": LATENCY.as_dict()}
    try:
        fill = anyio.run(_fill, server.connection_string, "photos", files)
        anyio.run(_fill, server.connection_string, "small", files[:BATCH])
        anyio.run(_fill, server.connection_string, "score", files[: args.predict])
        anyio.run(_fill, server.connection_string, "scoresmall", files[:20])
        print(f"filled: {len(files)} photos in {fill:.1f} s", file=sys.stderr)
        storage_env = {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
        with EmulatorProcess(tier="S0", latency=LATENCY, workdir=location / "emu") as emu:
            env = child_env({**emu.env(), **storage_env})
            small = _upload(emu, "az://small/", env, location / "up-small", "blob-small")
            big = _upload(emu, "az://photos/", env, location / "up-big", "blob-big")
            ceiling = S0_TRAINING_TPS * BATCH
            results["upload"] = {
                "images": big["images"], "ceiling_ips": ceiling, "sustained_ips": big["sustained_ips"],
                "e2e_ips": round(big["e2e_ips"], 1), "wall_s": round(big["wall_s"], 1),
                "ratio_to_ceiling": round(big["sustained_ips"] / ceiling, 3) if big["sustained_ips"] else None,
                "client_cpu_ms_per_image": _per_image(big, small), "client_cpu_s": round(big["cpu_s"], 2),
                "failed": big["report"].get("failed"), **_storage(big),
            }
            print(f"upload: {results['upload']}", file=sys.stderr)
        with EmulatorProcess(tier="S0", latency=LATENCY, workdir=location / "emu2") as emu:
            project = prepare_model(emu, make_tree("photos", 64, seed=5), location / "model")
            env = child_env({**emu.env(prediction=True), **storage_env})
            env.pop("VISION_TRAINING_KEY", None)
            env.pop("VISION_TRAINING_ENDPOINT", None)
            small = _predict(emu, "az://scoresmall/", env, location / "pr-small", project)
            big = _predict(emu, "az://score/", env, location / "pr-big", project)
            ceiling = S0_PREDICTION_NOSTORE_TPS
            results["predict"] = {
                "images": big["images"], "ceiling_ips": ceiling, "sustained_ips": big["sustained_ips"],
                "e2e_ips": round(big["e2e_ips"], 2), "wall_s": round(big["wall_s"], 1),
                "ratio_to_ceiling": round(big["sustained_ips"] / ceiling, 3) if big["sustained_ips"] else None,
                "client_cpu_ms_per_image": _per_image(big, small), "client_cpu_s": round(big["cpu_s"], 2),
                "failed": big["report"].get("failed"), **_storage(big),
            }
            print(f"predict: {results['predict']}", file=sys.stderr)
    finally:
        server.stop()
    results["machine"] = {"cores": os.cpu_count(), "loadavg": os.getloadavg()}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
