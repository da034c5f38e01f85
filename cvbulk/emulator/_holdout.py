"""Per-image predictions of an iteration's evaluation (GetImagePerformances).

The service sets part of the training images aside, trains on the rest, and shows how the model
did on the images it set aside (a project of 10 images shows 2). The emulator does the same with
its trainer's own evaluation split: the first fold of the stratified k-fold assignment that
``_trainer.evaluate`` uses (k = min(5, smallest tag count)), scored by a model fitted on the other
folds, with the same seed, so the images and numbers are stable. Synchronous: a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _trainer as tr
from ._blobs import BlobStore
from ._features import UndecodableImageError, cell_grid, image_vector

__all__ = ["holdout_predictions", "MAX_SAMPLES_PER_TAG"]

MAX_SAMPLES_PER_TAG = 400  # the training job's bound: the evaluation sees what training saw


def _samples(blobs: BlobStore, recorded: Sequence[dict]) -> list[tuple[str, tr.Sample]]:
    out: list[tuple[str, tr.Sample]] = []
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
            continue  # an image file gone from the data directory: nothing to score
        out.append((s["sha256"], tr.Sample(data, tags, regions)))
    return out


def holdout_predictions(blobs: BlobStore, kind: str, recorded: Sequence[dict], tag_ids: Sequence[str],
                        seed: int) -> list[tuple[str, list[Any]]]:
    """(sha256, ScoredTag list best first) for each held-out training image, in training order."""
    detection = kind == "ObjectDetection"
    extract = cell_grid if detection else image_vector
    keys: list[str] = []
    samples: list[tr.Sample] = []
    features: list[Any] = []
    for sha, sample in _samples(blobs, recorded):
        try:
            features.append(extract(sample.image))
        except UndecodableImageError:
            continue
        keys.append(sha)
        samples.append(sample)
    if len(samples) < 2:
        return []  # nothing to hold out: the service shows no image performance either
    held = sorted(tr._folds(kind, samples, seed)[0])
    rest = [i for i in range(len(samples)) if i not in set(held)]
    train_s = [samples[i] for i in rest]
    train_f = [features[i] for i in rest]
    if detection:
        model = tr._train_detector(train_f, train_s, seed=seed, extra_tags=tag_ids)
        return [(keys[i], model._detect(features[i])) for i in held]
    model = tr._train_classifier(kind, train_f, train_s, extra_tags=tag_ids)
    return [(keys[i], model._classify(features[i])) for i in held]
