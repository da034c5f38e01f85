"""From a prediction outcome to the output's row, and the column rule of the classification CSV."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..client._models import Prediction
from ._predict_engine import Outcome
from .output import CLASSIFICATION_COLUMNS, JSONL_SUFFIXES, PredictionRow, unescape_cell

__all__ = ["RowMaker", "output_format", "existing_tag_columns"]


def output_format(path: Path) -> str:
    """"jsonl" for .jsonl/.ndjson, else "csv" (the same rule as ``open_prediction_writer``)."""
    return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "csv"


def existing_tag_columns(path: Path) -> list[str] | None:
    """The tag columns of an existing classification CSV, or None when it has no usable header.

    An appended file keeps its header: rows of one job must line up under the same columns even
    when a tag was added to the project since the first run.
    """
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
            header = next(csv.reader(f), None)
    except FileNotFoundError:
        return None
    header = [unescape_cell(cell) for cell in header or ()]
    if tuple(header[: len(CLASSIFICATION_COLUMNS)]) != CLASSIFICATION_COLUMNS:
        return None
    return header[len(CLASSIFICATION_COLUMNS) :]


def _probability(p: dict[str, Any]) -> float:
    try:
        return float(p.get("probability") or 0.0)
    except (TypeError, ValueError):
        return 0.0


class RowMaker:
    """Builds one PredictionRow per outcome.

    ``top`` and ``threshold`` trim the predictions of JSONL and detection rows (best first). A
    classification CSV ignores both: it has a column for every tag, and a cell left blank by a
    threshold would be a number missing for the readers that load the file.
    """

    def __init__(self, *, csv_classification: bool, top: int | None, threshold: float | None) -> None:
        self.trim = not csv_classification
        self.top = top
        self.threshold = threshold

    def row(self, outcome: Outcome) -> PredictionRow:
        extra = {"fixes": list(outcome.fixes)} if outcome.fixes else None
        if not outcome.ok:
            return PredictionRow(outcome.key, outcome.status, outcome.reason, None, extra)
        predictions = self.predictions(outcome.prediction.predictions)
        return PredictionRow(outcome.key, outcome.status, None, predictions, extra)

    def predictions(self, predictions: Sequence[Any]) -> list[dict[str, Any]]:
        if not self.trim:
            # A classification CSV reads the tag and its probability only: no full to_json per prediction, and
            # no sort: its cells go by tag, and its top tag is the first of the most probable, in any order.
            return [
                {"tagName": p.tag_name, "tagId": p.tag_id, "probability": p.probability}
                if isinstance(p, Prediction) else dict(p)
                for p in predictions
            ]
        out = [p.to_json() if hasattr(p, "to_json") else dict(p) for p in predictions]
        out.sort(key=_probability, reverse=True)  # stable: ties keep the service's order
        if self.trim:
            if self.threshold is not None:
                out = [p for p in out if _probability(p) >= self.threshold]
            if self.top is not None:
                out = out[: self.top]
        return out
