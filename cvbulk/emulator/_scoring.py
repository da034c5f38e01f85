"""Turning a model's scores into the service's shapes, for the operations that score stored
images (suggested tags, image performances): Prediction objects and the prediction uncertainty."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["predictions_json", "uncertainty"]


def predictions_json(scored: Iterable[Any], tags: Sequence[dict], *, with_tag_type: bool = True) -> list[dict]:
    """Prediction objects (probability, tagId, tagName, boundingBox for detection, tagType) from the
    trainer's ScoredTag list, for the tags of the iteration's snapshot only, best first."""
    by_id = {t["id"]: t for t in tags}
    out = []
    for s in scored:
        tag = by_id.get(s.tag_id)
        if tag is None:
            continue
        p: dict = {"probability": float(s.probability), "tagId": s.tag_id, "tagName": tag["name"]}
        if s.box is not None:
            p["boundingBox"] = {"left": s.box.left, "top": s.box.top, "width": s.box.width, "height": s.box.height}
        if with_tag_type:
            p["tagType"] = tag["type"]
        out.append(p)
    return out


def uncertainty(predictions: Sequence[dict]) -> float:
    """Entropy in bits of the predicted probabilities, -sum(p log2 p): the service's
    ``predictionUncertainty`` (its recorded 5.589e-06 for probabilities 0.999999762 and 2.38e-07
    is exactly this)."""
    total = 0.0
    for p in predictions:
        q = float(p["probability"])
        if 0.0 < q < 1.0:
            total -= q * math.log2(q)
    return total
