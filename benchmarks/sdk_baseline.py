"""The official SDK (azure-cognitiveservices-vision-customvision 3.1.1) as its users write it.

Run as a child process by the scenarios, so that its CPU time and memory are its own::

    python -m benchmarks.sdk_baseline upload ROOT --result R.json [--threads 8] [--retry-429] [--limit N]
    python -m benchmarks.sdk_baseline predict ROOT --project ID --published-name NAME --result R.json ...

Connection from the quickstart's variables (VISION_TRAINING_ENDPOINT, ...).

- ``upload`` sequential (the quickstart): one ``create_images_from_files`` call per 64 images
  (``ImageFileCreateBatch``), one after the other. The quickstart reads every image into one list first;
  here each batch of 64 is read just before it is sent (the quickstart's way would hold the whole tree,
  1.8 GB, in memory). A batch that is not fully successful is counted and the run goes on (the
  quickstart prints the statuses and exits). No retry: msrest does not retry 429 (nor any POST), so a
  throttled batch raises ``CustomVisionErrorException`` and its images are lost (counted).
- ``--threads N``: the same batches from N threads (one client each), what a careful user writes.
- ``--retry-429``: the careful user also catches the 429, sleeps for Retry-After (or 1 s) and retries
  (up to 20 times).
- ``predict``: ``classify_image_with_no_store`` per image, sequential or ``--threads N``, same retry rule.

Each finished item appends one byte to ``--progress`` (the scenario samples its size every 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials
from msrest.exceptions import HttpOperationError

# training.models and prediction.models each define their own CustomVisionErrorException; both are
# msrest HttpOperationErrors carrying the HTTP response
SDK_ERRORS = (CustomVisionErrorException, HttpOperationError)

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
BATCH = 64


def _files(root: Path, limit: int | None) -> list[tuple[str, Path]]:
    """(tag, path) for every image under root: the first folder level is the tag, like the quickstart."""
    out = []
    for tag_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for dirpath, dirnames, filenames in os.walk(tag_dir):
            dirnames.sort()
            for name in sorted(filenames):
                if os.path.splitext(name)[1].lower() in EXTENSIONS:
                    out.append((tag_dir.name, Path(dirpath) / name))
    out.sort(key=lambda t: str(t[1]))
    return out[:limit] if limit else out


class Counters:
    def __init__(self, progress: Path | None) -> None:
        self.lock = threading.Lock()
        self.ok = self.duplicate = self.failed = self.lost = self.throttled = self.errors = self.retries = 0
        self.statuses: dict[str, int] = {}
        self.latencies: list[float] = []
        self._progress = open(progress, "ab", buffering=0) if progress else None

    def done(self, n: int) -> None:
        if self._progress is not None and n:
            self._progress.write(b"." * n)


def _status(exc: HttpOperationError) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(exc: HttpOperationError) -> float:
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("Retry-After", 1))  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return 1.0


def _call(fn: Callable[[], Any], c: Counters, retry_429: bool) -> tuple[Any, str | None]:
    """(result, None) or (None, why it failed)."""
    attempts = 0
    while True:
        attempts += 1
        started = time.perf_counter()
        try:
            result = fn()
            with c.lock:
                c.latencies.append(time.perf_counter() - started)
            return result, None
        except SDK_ERRORS as exc:
            status = _status(exc)
            if status == 429:
                with c.lock:
                    c.throttled += 1
                if retry_429 and attempts <= 20:
                    with c.lock:
                        c.retries += 1
                    time.sleep(_retry_after(exc))
                    continue
                return None, "429"
            return None, f"http {status}"
        except Exception as exc:  # noqa: BLE001 - a connection error ends this item, as in user code
            return None, type(exc).__name__


def upload(args: argparse.Namespace) -> dict[str, Any]:
    endpoint, key = os.environ["VISION_TRAINING_ENDPOINT"], os.environ["VISION_TRAINING_KEY"]
    c = Counters(args.progress)
    files = _files(args.root, args.limit)
    make_client = lambda: CustomVisionTrainingClient(endpoint, ApiKeyCredentials(in_headers={"Training-key": key}))  # noqa: E731
    trainer = make_client()
    project = trainer.create_project(f"sdk-bench-{uuid.uuid4().hex[:8]}")
    tags = {name: trainer.create_tag(project.id, name).id for name in sorted({t for t, _ in files})}
    batches = [files[i:i + BATCH] for i in range(0, len(files), BATCH)]
    started = time.perf_counter()

    def send(client: CustomVisionTrainingClient, batch: list[tuple[str, Path]]) -> None:
        entries = [ImageFileCreateEntry(name=p.name, contents=p.read_bytes(), tag_ids=[tags[t]]) for t, p in batch]
        result, why = _call(
            lambda: client.create_images_from_files(project.id, ImageFileCreateBatch(images=entries)), c, args.retry_429
        )
        with c.lock:
            if result is None:
                c.lost += len(batch)
                c.errors += 1
                c.statuses[why or "error"] = c.statuses.get(why or "error", 0) + len(batch)
            else:
                for image in result.images:
                    c.statuses[image.status] = c.statuses.get(image.status, 0) + 1
                    if image.status == "OK":
                        c.ok += 1
                    elif image.status == "OKDuplicate":
                        c.duplicate += 1
                    else:
                        c.failed += 1
            c.done(len(batch))

    _run(batches, send, make_client, trainer, args.threads)
    elapsed = time.perf_counter() - started
    return _result(c, len(files), elapsed, project_id=project.id)


def predict(args: argparse.Namespace) -> dict[str, Any]:
    endpoint, key = os.environ["VISION_PREDICTION_ENDPOINT"], os.environ["VISION_PREDICTION_KEY"]
    c = Counters(args.progress)
    files = _files(args.root, args.limit)
    make_client = lambda: CustomVisionPredictionClient(endpoint, ApiKeyCredentials(in_headers={"Prediction-key": key}))  # noqa: E731
    started = time.perf_counter()

    def score(client: CustomVisionPredictionClient, item: tuple[str, Path]) -> None:
        data = item[1].read_bytes()
        result, why = _call(
            lambda: client.classify_image_with_no_store(args.project, args.published_name, data), c, args.retry_429
        )
        with c.lock:
            if result is None:
                c.lost += 1
                c.statuses[why or "error"] = c.statuses.get(why or "error", 0) + 1
            else:
                c.ok += 1
            c.done(1)

    _run(files, score, make_client, make_client(), args.threads)
    elapsed = time.perf_counter() - started
    return _result(c, len(files), elapsed)


def _run(items: list, work: Callable[[Any, Any], None], make_client: Callable[[], Any], first: Any, threads: int) -> None:
    if threads <= 1:
        for item in items:
            work(first, item)
        return
    q: queue.Queue = queue.Queue()
    for item in items:
        q.put(item)

    def worker() -> None:
        client = make_client()
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                return
            work(client, item)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _result(c: Counters, files: int, elapsed: float, **extra: Any) -> dict[str, Any]:
    lat = sorted(c.latencies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else 0.0

    return {
        "files": files, "ok": c.ok, "duplicate": c.duplicate, "failed": c.failed, "lost": c.lost,
        "throttled": c.throttled, "retries": c.retries, "failed_calls": c.errors, "statuses": c.statuses,
        "seconds": round(elapsed, 3), "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sdk_baseline")
    parser.add_argument("job", choices=("upload", "predict"))
    parser.add_argument("root", type=Path)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--progress", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--retry-429", action="store_true")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--project")
    parser.add_argument("--published-name")
    args = parser.parse_args(argv)
    result = upload(args) if args.job == "upload" else predict(args)
    args.result.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
