"""An iteration's evaluation: computed once, stored, read by the performance calls.

The first GetIterationPerformance or GetImagePerformances of a trained iteration cross-validates it
(``_trainer.cross_validate``) in a cancellable worker thread (``_cancel.run_cpu``), never on the
event loop, whoever asks meanwhile waiting for that one computation, and stores every held-out
image's truth and predictions (``models/<iteration>.evaluation.json``). Any threshold /
overlapThreshold is then a cheap summary of those predictions. (The service has it when training
completes; here a training does not pay several trainings of CPU for figures most never read.) The first fold's images are the ones GetImagePerformances
shows (the service shows 2 of a 10-image project).

Bounded on large projects, deterministically: folds are scored until at least ``MIN_SCORED``
images were, a fold's model sees at most ``MAX_TRAIN`` images, at most ``MAX_SCORED`` images are
scored. Projects up to about 60 images get full k-fold cross-validation (every image scored once);
from about 250 on, one fold is scored (as the service's one held-out split). The figures stay
honest: every scored image was held out of the model that scored it.

"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from . import _trainer as tr
from ._blobs import BlobStore
from ._cancel import checkpoint, run_cpu
from ._features import UndecodableImageError, cell_grid, image_vector
from ._scoring import predictions_json

if TYPE_CHECKING:
    from ._state import EmulatorState

__all__ = [
    "MAX_SAMPLES_PER_TAG", "MIN_SCORED", "MAX_TRAIN", "MAX_SCORED", "DEFAULT_OVERLAP",
    "Prepared", "prepare", "evaluate_prepared", "evaluation_path", "write_evaluation", "read_evaluation",
    "performance_at", "image_performances", "compute_stored", "stored_evaluation", "train_prepared",
    "performance_json",
]

MAX_SAMPLES_PER_TAG = 400  # bounds training time and memory on large benchmark projects
MIN_SCORED = 50  # held-out images scored at least (all of them in projects up to ~60 images)
MAX_TRAIN = 240  # images a cross-validation model is fitted on at most
MAX_SCORED = 200  # held-out images scored at most
DEFAULT_OVERLAP = 0.3  # IoU a detected box needs with a region to count as found
FORMAT = "cvbulk-evaluation/1"


class Prepared:
    """An iteration's usable training samples with their features, extracted once for the model
    and its cross-validation."""

    def __init__(self, kind: str, keys: list[str], samples: list[tr.Sample], features: list[Any],
                 sample_tags: list[str]) -> None:
        self.kind, self.keys, self.samples, self.features = kind, keys, samples, features
        self.sample_tags = sample_tags  # every tag with samples, decodable or not (as evaluate counts)


def prepare(blobs: BlobStore, kind: str, recorded: Sequence[dict], *, strict: bool = True) -> Prepared:
    """Samples (at most MAX_SAMPLES_PER_TAG per tag, in training order) and their features.
    ``strict``: an image file gone from the data folder fails the training; else it is skipped."""
    extract = cell_grid if kind == "ObjectDetection" else image_vector
    all_samples: list[tr.Sample] = []
    keys: list[str] = []
    samples: list[tr.Sample] = []
    features: list[Any] = []
    per_tag: dict[str, int] = {}
    for s in recorded:
        tags = tuple(s["tags"])
        if tags and all(per_tag.get(t, 0) >= MAX_SAMPLES_PER_TAG for t in tags):
            continue
        for t in tags:
            per_tag[t] = per_tag.get(t, 0) + 1
        regions = tuple(tr.RegionBox(r[0], r[1], r[2], r[3], r[4]) for r in s["regions"])
        try:
            data = blobs.get(s["sha256"])
        except OSError:
            if strict:
                raise
            continue
        sample = tr.Sample(data, tags, regions)
        all_samples.append(sample)
        checkpoint()
        try:
            features.append(extract(data))
        except UndecodableImageError:
            continue  # the service refuses such images on upload; one bad file must not stop training
        keys.append(s["sha256"])
        samples.append(sample)
    return Prepared(kind, keys, samples, features, tr._sample_tags(kind, all_samples))


def train_prepared(p: Prepared, seed: int) -> tr.Model:
    """The iteration's model (as ``_trainer.train_model`` fits it) on prepared samples."""
    if p.kind == "ObjectDetection":
        return tr._train_detector(p.features, p.samples, seed=seed)
    return tr._train_classifier(p.kind, p.features, p.samples)


def _box(b: tr.RegionBox | None) -> list[float]:
    return [] if b is None else [b.left, b.top, b.width, b.height]


def evaluate_prepared(p: Prepared, tag_ids: Sequence[str], seed: int) -> dict:
    """The stored evaluation: per held-out image its sha256, fold, truth and predictions."""
    scored = tr.cross_validate(p.kind, p.features, p.samples, seed=seed, extra_tags=tag_ids,
                               min_scored=MIN_SCORED, max_train=MAX_TRAIN, max_scored=MAX_SCORED) \
        if p.sample_tags else []
    images = []
    for i, fold, found in scored:
        s = p.samples[i]
        images.append({
            "index": i, "sha": p.keys[i], "fold": fold, "tags": list(s.tag_ids),
            "regions": [[r.tag_id, r.left, r.top, r.width, r.height] for r in s.regions],
            "predicted": [[x.tag_id, x.probability, *_box(x.box)] for x in found],
        })
    return {"format": FORMAT, "kind": p.kind, "tags": p.sample_tags, "images": images}


def evaluation_path(models_dir: Path, iteration_id: str) -> Path:
    return models_dir / f"{iteration_id}.evaluation.json"


def write_evaluation(models_dir: Path, iteration_id: str, evaluation: dict) -> None:
    target = evaluation_path(models_dir, iteration_id)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(evaluation))
    os.replace(tmp, target)


def read_evaluation(models_dir: Path, iteration_id: str) -> dict | None:
    try:
        data = json.loads(evaluation_path(models_dir, iteration_id).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _held_out(evaluation: dict) -> list[tuple[tr.Sample, list[tr.ScoredTag]]]:
    out = []
    for im in evaluation["images"]:
        truth = tr.Sample(b"", tuple(im["tags"]), tuple(tr.RegionBox(*r) for r in im["regions"]))
        found = [tr.ScoredTag(x[0], x[1], tr.RegionBox(x[0], *x[2:6]) if len(x) > 2 else None)
                 for x in im["predicted"]]
        out.append((truth, found))
    return out


def performance_at(evaluation: dict, tags: list[dict], threshold: float = 0.5,
                   overlap: float = DEFAULT_OVERLAP) -> dict:
    """The spec's IterationPerformance of a stored evaluation at a threshold and overlap."""
    perf = tr.summarise(evaluation["kind"], evaluation["tags"], _held_out(evaluation),
                        threshold=threshold, overlap_threshold=overlap)
    return performance_json(perf, tags)


def image_performances(evaluation: dict, tags: list[dict]) -> list[dict]:
    """[{sha, predictions}] of the first fold's images, in training order (GetImagePerformances)."""
    first = sorted((im for im in evaluation["images"] if im["fold"] == 0), key=lambda im: im["index"])
    held = {id(im): pair for im, pair in zip(evaluation["images"], _held_out(evaluation))}
    return [{"sha": im["sha"], "predictions": predictions_json(held[id(im)][1], tags)} for im in first]


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


def compute_stored(blobs: BlobStore, models_dir: Path, state: dict, seed: int) -> dict:
    """The evaluation of a trained iteration: computed from its recorded samples (images gone since are skipped) and stored. Synchronous."""
    p = prepare(blobs, state["kind"], state["samples"], strict=False)
    evaluation = evaluate_prepared(p, [t["id"] for t in state["tags"]], seed)
    write_evaluation(models_dir, str(state["id"]), evaluation)
    return evaluation


async def stored_evaluation(st: EmulatorState, project_id: str, state: dict) -> dict:
    """The iteration's stored evaluation; computed on the first request (once, whoever asks meanwhile
    waits for it), off the event loop."""
    models_dir = st.data_dir / "models"
    iid = str(state["id"])
    found = await anyio.to_thread.run_sync(read_evaluation, models_dir, iid)
    if found is not None:
        return found
    lock = st.perf_locks.setdefault(("evaluation", iid), anyio.Lock())
    async with lock:
        found = await anyio.to_thread.run_sync(read_evaluation, models_dir, iid)
        if found is None:
            full = await anyio.to_thread.run_sync(
                lambda: st.store.iteration_state(project_id, iid, samples=True))
            found = await run_cpu(compute_stored, st.blobs, models_dir, full, st.config.seed, limiter=st.cpu)
    return found
