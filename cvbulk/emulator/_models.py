"""Training in the background and a cache of trained models for predictions.

The trainer (``_trainer``) is pure and synchronous: a training job runs it in a daemon worker
thread (``_cancel.run_cpu``), bounded by a CapacityLimiter so training and scoring never take more
cores than the machine has, and cancelled by a stop. The job fits the model; the iteration's
performance is cross-validated on the first request for it (``_evaluation``), then stored.
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
from ._cancel import run_cpu
from ._store import Store

__all__ = ["ModelCache", "run_training_job"]

log = logging.getLogger("cvbulk.emulator")


def _trainer():
    from . import _trainer  # imported late: written separately, loaded only when needed

    return _trainer


def _fit(blobs: BlobStore, models_dir: Path, job: dict, seed: int) -> None:
    """Fit and store the model. Synchronous: a worker thread."""
    from . import _evaluation as ev  # late, as the trainer

    prepared = ev.prepare(blobs, job["kind"], job["samples"])
    model = ev.train_prepared(prepared, seed)
    target = models_dir / f"{job['iteration_id']}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(model.to_dict()))
    os.replace(tmp, target)


async def run_training_job(store: Store, blobs: BlobStore, models_dir: Path, job: dict,
                           limiter: anyio.CapacityLimiter, seed: int, min_seconds: float = 0.0) -> None:
    """Train one iteration; it ends Completed, or Failed. It takes at least ``min_seconds``, so that
    a poller sees ``Training`` as it does on the service: queued for the first half (``domainId``
    still null, as recorded), then training. A stop cancels it: the iteration stays in Training and
    is trained again at the next start.

    The performance is not computed here: a cross-validation costs several trainings of CPU, which a
    quickstart (or a test suite) that never asks for it should not pay. The first performance call
    computes it, bounded and off the event loop, and stores it (``_evaluation.stored_evaluation``)."""
    iid = job["iteration_id"]
    started = time.monotonic()
    if min_seconds > 0:
        await anyio.sleep(min_seconds / 2)
    await anyio.to_thread.run_sync(store.mark_training_started, iid)
    try:
        await run_cpu(_fit, blobs, models_dir, job, seed, limiter=limiter)
        status = "Completed"
    except Exception:
        log.exception("training of iteration %s failed", iid)
        status = "Failed"
    rest = min_seconds - (time.monotonic() - started)
    if rest > 0:
        await anyio.sleep(rest)
    await anyio.to_thread.run_sync(store.finish_training, iid, status, time.monotonic() - started)


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
