"""The demo's last step: read the prediction CSV back, show it, and say whether the quickstart worked."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ._format import safe_table

__all__ = ["Verdict", "check_predictions"]

# Column names the prediction writer may use for the best tag of a row (first found wins).
TOP_TAG_COLUMNS = ("top_tag", "tag", "tag_name", "best_tag", "prediction", "predicted_tag")
TOP_PROBABILITY_COLUMNS = ("top_probability", "probability", "best_probability")
PATH_COLUMNS = ("path", "relpath", "file", "image", "name")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    table: str


def _first(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    for name in wanted:
        if name in lower:
            return lower[name]
    return None


def _top_tag(row: dict[str, str], columns: list[str]) -> tuple[str | None, float | None]:
    tag_column = _first(columns, TOP_TAG_COLUMNS)
    if tag_column is not None:
        probability_column = _first(columns, TOP_PROBABILITY_COLUMNS)
        value = row.get(probability_column) if probability_column else None
        return (row.get(tag_column) or None), _float(value)
    return None, None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _render(columns: list[str], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    safe_table([[row.get(c, "") for c in columns] for row in rows], columns, file=buffer)
    return buffer.getvalue().rstrip("\n")


def check_predictions(path: Path, *, expected: str, detection: bool) -> Verdict:
    """Whether the test image's best prediction is ``expected`` (Hemlock, or fork for detection)."""
    if not path.is_file():
        return Verdict(False, f"no prediction file at {path}", "")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    table = _render(columns, rows)
    if not rows:
        return Verdict(False, f"{path.name} has no rows", table)
    path_column = _first(columns, PATH_COLUMNS) or columns[0]
    # Detection files may hold one row per box: the best box of the image decides.
    best: dict[str, tuple[str | None, float]] = {}
    for row in rows:
        tag, probability = _top_tag(row, columns)
        key = row.get(path_column, "")
        score = probability if probability is not None else 0.0
        if key not in best or score > best[key][1]:
            best[key] = (tag, score)
    wrong = {key: tag for key, (tag, _) in best.items() if tag != expected}
    if wrong:
        details = ", ".join(f"{key} came out {tag or 'with no tag'}" for key, tag in sorted(wrong.items()))
        return Verdict(False, f"the test image is not predicted {expected}: {details}", table)
    images = ", ".join(sorted(best))
    kind = "detected" if detection else "classified"
    return Verdict(True, f"{images} {kind} as {expected}, as in the quickstart", table)
