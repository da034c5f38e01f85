"""``cvbulk bench``: what the user's own resource gives, measured with a throw-away project.

Synthetic images (seeded, in two tags with their own tint) go through the real pipeline: ``run_upload``
into a new project, then (with ``predict``) a training, a publication and ``run_predict`` over the same
images. The figures: images/s, MB/s, latency percentiles and 429s (``ClientStats``), and the concurrency
the adaptive limiter settled on (``Pacer``). What was created is deleted at the end, unless ``keep``.
"""

from __future__ import annotations

import io
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..client import TrainingFailedError, TrainingTimeoutError
from .errors import ConfigError, FatalRunError

__all__ = ["BenchOptions", "run_bench", "synthetic_tree", "BENCH_TAGS"]

BENCH_TAGS = ("bench-red", "bench-blue")
_TINTS = {"bench-red": (200, 40, 40), "bench-blue": (40, 60, 200)}


@dataclass
class BenchOptions:
    images: int = 640
    predict: bool = False
    keep: bool = False
    tier: str = "S0"
    max_concurrency: int = 32
    width: int = 800  # the synthetic images: width x 3/4 width noisy JPEGs (~0.2 MB at 800 px)
    seed: int = 0
    published_name: str = "cvbulk-bench"
    prediction_resource_id: str | None = None
    training_timeout: float = 900.0
    workdir: Path | None = None


def synthetic_tree(root: Path, count: int, *, width: int = 800, seed: int = 0) -> int:
    """``count`` seeded JPEGs under ``root/<tag>/``; returns their total size in bytes."""
    from PIL import Image

    height = max(1, width * 3 // 4)
    total = 0
    for i in range(count):
        tag = BENCH_TAGS[i % len(BENCH_TAGS)]
        rng = random.Random(f"cvbulk-bench:{seed}:{i}")
        noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        img = Image.blend(Image.new("RGB", (width, height), _TINTS[tag]), noise, 0.6)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        folder = root / tag
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"bench-{i:06d}.jpg").write_bytes(buf.getvalue())
        total += len(buf.getvalue())
    return total


def _phase(report: dict[str, Any], client: Any, group: Any, images_key: str) -> dict[str, Any]:
    stats = client.stats.snapshot()
    throughput = report.get("throughput") or {}
    return {
        "images": report.get(images_key, 0),
        "failed": report.get("failed", 0),
        "seconds": report.get("elapsed_s"),
        "images_per_s": throughput.get("images_per_s"),
        "mb_per_s": throughput.get("mb_per_s"),
        "requests": stats["requests"],
        "retries": stats["retries"],
        "throttled_429": stats["throttled"],
        "server_errors": stats["server_errors"],
        "transport_errors": stats["transport_errors"],
        "latency_ms": stats["latency_ms"],
        "concurrency_settled": client.pacer.concurrency(group),
    }


async def run_bench(
    training: Any, prediction: Any | None, options: BenchOptions, *, log: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    """Measure upload (and prediction) on the resource behind ``training`` / ``prediction``."""
    from ..client import ApiGroup
    from .predict import PredictOptions, run_predict
    from .upload import UploadOptions, run_upload

    if options.images < 1:
        raise ConfigError("{opt:images} must be at least 1")
    if options.predict and prediction is None:
        raise ConfigError("{opt:predict} needs a prediction endpoint and key")
    if options.predict and not options.prediction_resource_id:
        raise ConfigError("{opt:predict} needs the prediction resource id to publish to "
                          "({opt:prediction_resource_id})")
    if options.predict and options.images < 10:
        raise ConfigError("{opt:predict} needs at least 10 images (the service trains on at least 5 per tag)")
    work = Path(options.workdir) if options.workdir else Path(tempfile.mkdtemp(prefix="cvbulk-bench-"))
    own_work = options.workdir is None
    name = f"cvbulk-bench-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    result: dict[str, Any] = {
        "endpoint": training.endpoint, "tier": options.tier, "project": name, "images": options.images,
        "max_concurrency": options.max_concurrency, "kept": options.keep,
    }
    project_id: str | None = None
    published: str | None = None
    try:
        root = work / "images"
        log(f"making {options.images} synthetic images ...")
        nbytes = await anyio.to_thread.run_sync(
            lambda: synthetic_tree(root, options.images, width=options.width, seed=options.seed))
        result["image_mb"] = round(nbytes / options.images / 1e6, 3)
        log(f"uploading into the throw-away project {name!r} ...")
        upload = await run_upload(training, UploadOptions(
            root=root, project=name, create=True, state=work / "upload.sqlite", report=work / "upload.json",
            tier=options.tier, max_concurrency=options.max_concurrency))
        project_id = (upload.report.get("extra") or {}).get("project", {}).get("id")
        result["project_id"] = project_id
        result["upload"] = _phase(upload.report, training, ApiGroup.TRAINING, "succeeded")
        if options.predict and project_id:
            log("training ...")
            started = time.monotonic()
            iteration = await training.train_project(project_id)
            try:
                iteration = await training.wait_for_iteration(
                    project_id, iteration.id, poll=5.0, timeout=options.training_timeout
                )
            except TrainingTimeoutError:
                raise FatalRunError(f"training did not finish in {options.training_timeout:g} s") from None
            except TrainingFailedError as exc:
                raise FatalRunError(f"training ended with status {exc.iteration.status}") from None
            result["training_s"] = round(time.monotonic() - started, 2)
            await training.publish_iteration(
                project_id, iteration.id, options.published_name, options.prediction_resource_id)
            published = iteration.id
            log("scoring ...")
            assert prediction is not None  # checked above: --predict needs a prediction connection
            scored = await run_predict(prediction, None, PredictOptions(
                root=root, project=project_id, published_name=options.published_name, output=work / "scores.csv",
                state=work / "predict.sqlite", report=work / "predict.json", max_concurrency=options.max_concurrency))
            result["predict"] = _phase(scored.report, prediction, ApiGroup.PREDICTION_NOSTORE, "succeeded")
    finally:
        with anyio.CancelScope(shield=True):
            if project_id and not options.keep:
                try:
                    if published:
                        await training.unpublish_iteration(project_id, published)
                    await training.delete_project(project_id)
                    result["deleted"] = True
                except Exception as exc:
                    result["deleted"] = False
                    result["cleanup_error"] = " ".join(str(exc).split())[:200]
            if own_work:
                shutil.rmtree(work, ignore_errors=True)
    return result
