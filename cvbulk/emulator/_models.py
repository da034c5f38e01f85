"""Training in the background and a cache of trained models for predictions.

The trainer (``_trainer``) is pure and synchronous: it runs in worker threads, bounded by a
CapacityLimiter so training and scoring never take more cores than the machine has.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anyio

from ._blobs import BlobStore
from ._store import Store

__all__ = ["ModelCache", "performance_json", "run_training_job"]

log = logging.getLogger("cvbulk.emulator")

_MAX_SAMPLES_PER_TAG = 400  # bounds training time and memory on large benchmark projects


def _trainer():
    from . import _trainer  # imported late: written separately, loaded only when needed

    return _trainer


def _samples(blobs: BlobStore, samples: list[dict]) -> list[Any]:
    tr = _trainer()
    out: list[Any] = []
    per_tag: dict[str, int] = {}
    for s in samples:
        tags = tuple(s["tags"])
        if tags and all(per_tag.get(t, 0) >= _MAX_SAMPLES_PER_TAG for t in tags):
            continue
        for t in tags:
            per_tag[t] = per_tag.get(t, 0) + 1
        regions = tuple(tr.RegionBox(r[0], r[1], r[2], r[3], r[4]) for r in s["regions"])
        out.append(tr.Sample(blobs.get(s["sha256"]), tags, regions))
    return out


def performance_json(perf: Any, tags: list[dict]) -> dict:
    """The trainer's Performance as the spec's IterationPerformance."""
    names = {t["id"]: t["name"] for t in tags}
    return {
        "perTagPerformance": [
            {
                "id": tag_id, "name": names.get(tag_id, ""),
                "precision": float(score.precision), "precisionStdDeviation": 0.0,
                "recall": float(score.recall), "recallStdDeviation": 0.0,
                "averagePrecision": float(score.average_precision),
            }
            for tag_id, score in perf.per_tag.items()
        ],
        "precision": float(perf.precision), "precisionStdDeviation": 0.0,
        "recall": float(perf.recall), "recallStdDeviation": 0.0,
        "averagePrecision": float(perf.average_precision),
    }


def _train(blobs: BlobStore, models_dir: Path, job: dict, seed: int) -> None:
    # Performance (cross-validation, several fits) is computed when first asked for, not here:
    # most runs never ask, and the emulator shares the machine with the client it serves.
    tr = _trainer()
    model = tr.train_model(job["kind"], _samples(blobs, job["samples"]), seed=seed)
    target = models_dir / f"{job['iteration_id']}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(model.to_dict()))
    os.replace(tmp, target)


async def run_training_job(store: Store, blobs: BlobStore, models_dir: Path, job: dict,
                           limiter: anyio.CapacityLimiter, seed: int, min_seconds: float = 0.0) -> None:
    """Train one iteration; it ends Completed with its performance, or Failed. It takes at least
    ``min_seconds``, so that a poller sees ``Training`` as it does on the service: queued for
    the first half (``domainId`` still null, as recorded), then training."""
    started = time.monotonic()
    if min_seconds > 0:
        await anyio.sleep(min_seconds / 2)
    await anyio.to_thread.run_sync(store.mark_training_started, job["iteration_id"])
    try:
        await anyio.to_thread.run_sync(_train, blobs, models_dir, job, seed, limiter=limiter, abandon_on_cancel=True)
        status = "Completed"
    except Exception:
        log.exception("training of iteration %s failed", job["iteration_id"])
        status = "Failed"
    rest = min_seconds - (time.monotonic() - started)
    if rest > 0:
        await anyio.sleep(rest)
    await anyio.to_thread.run_sync(store.finish_training, job["iteration_id"], status, None, time.monotonic() - started)


class ModelCache:
    """Trained models by iteration id, loaded once from ``models/`` and kept (LRU)."""

    def __init__(self, models_dir: Path, size: int = 16) -> None:
        self.models_dir = models_dir
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._size = size
        self._lock = anyio.Lock()

    async def get(self, iteration_id: str) -> Any:
        async with self._lock:
            model = self._models.get(iteration_id)
            if model is None:
                model = await anyio.to_thread.run_sync(self._load, iteration_id)
                self._models[iteration_id] = model
                if len(self._models) > self._size:
                    self._models.popitem(last=False)
            self._models.move_to_end(iteration_id)
            return model

    def _load(self, iteration_id: str) -> Any:
        data = json.loads((self.models_dir / f"{iteration_id}.json").read_text())
        return _trainer().Model.from_dict(data)


def evaluate_iteration(blobs: BlobStore, state: dict, threshold: float, seed: int) -> dict:
    """IterationPerformance of a trained iteration at a threshold (synchronous: cross-validation)."""
    tr = _trainer()
    perf = tr.evaluate(state["kind"], _samples(blobs, state["samples"]), threshold=threshold, seed=seed)
    return performance_json(perf, state["tags"])
