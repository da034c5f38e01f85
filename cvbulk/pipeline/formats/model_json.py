"""``model.json``: the project's model history, so the quality bar to beat travels with the data.

Built from client objects (``cvbulk.client`` ``Project``, ``Iteration``, ``IterationPerformance``,
``Domain``) or the service's plain JSON dicts (camelCase) or snake_case dicts. Each iteration has its name,
dates, domain, training type, classification type, status, export platforms and, when given, its
performance at the stated thresholds: overall precision / recall / AP and per tag.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .model import Sink, WriteResult

__all__ = ["model_document", "write_model_json", "MODEL_FILE", "MODEL_FORMAT"]

MODEL_FILE = "model.json"
MODEL_FORMAT = "cvbulk-model/1"


def _plain(obj: Any) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, Mapping):
        return obj
    raise TypeError(f"expected a client model or a dict, got {type(obj).__name__}")


def _get(d: Mapping[str, Any], snake: str) -> Any:
    if snake in d:
        return d[snake]
    head, *rest = snake.split("_")
    return d.get(head + "".join(p[:1].upper() + p[1:] for p in rest))


def _metrics(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _get(d, k) for k in ("precision", "recall", "average_precision",
                                     "precision_std_deviation", "recall_std_deviation")}
    return {k: v for k, v in out.items() if v is not None}


def model_document(
    project: Any,
    iterations: Iterable[tuple[Any, Any]],
    *,
    domains: Mapping[str, str] | None = None,
    threshold: float | None = None,
    overlap_threshold: float | None = None,
    exported_at: str | None = None,
) -> dict[str, Any]:
    """The ``model.json`` document. ``iterations``: ``(iteration, performance)`` pairs (None: not trained; a
    str: why the service did not give it, written as ``performance_error``);
    ``domains``: domain id -> name."""
    p = _plain(project)
    settings = _plain(_get(p, "settings"))
    domains = {str(k).lower(): v for k, v in (domains or {}).items()}
    items = []
    for it, perf in iterations:
        i = _plain(it)
        domain_id = _get(i, "domain_id")
        entry: dict[str, Any] = {
            "id": _get(i, "id"),
            "name": _get(i, "name"),
            "status": _get(i, "status"),
            "created": _get(i, "created"),
            "last_modified": _get(i, "last_modified"),
            "trained_at": _get(i, "trained_at"),
            "domain_id": domain_id,
            "domain": domains.get(str(domain_id).lower()) if domain_id else None,
            "training_type": _get(i, "training_type"),
            "classification_type": _get(i, "classification_type"),
            "training_time_in_minutes": _get(i, "training_time_in_minutes"),
            "reserved_budget_in_hours": _get(i, "reserved_budget_in_hours"),
            "exportable_to": list(_get(i, "exportable_to") or []),
            "publish_name": _get(i, "publish_name"),
        }
        if isinstance(perf, str):  # the service did not give it: why
            entry["performance"] = None
            entry["performance_error"] = perf
        elif perf is not None:
            q = _plain(perf)
            entry["performance"] = {
                **_metrics(q),
                "per_tag": [
                    {"name": _get(t, "name"), "id": _get(t, "id"), **_metrics(t)}
                    for t in (_plain(x) for x in (_get(q, "per_tag_performance") or ()))
                ],
            }
        items.append(entry)
    items.sort(key=lambda e: (e["created"] or "", e["name"] or ""))
    return {
        "format": MODEL_FORMAT,
        "exported_at": exported_at,
        "project": {
            "id": _get(p, "id"),
            "name": _get(p, "name"),
            "description": _get(p, "description"),
            "created": _get(p, "created"),
            "domain_id": _get(settings, "domain_id"),
            "domain": domains.get(str(_get(settings, "domain_id")).lower()),
            "classification_type": _get(settings, "classification_type"),
        },
        "thresholds": {"probability": threshold, "overlap": overlap_threshold},
        "iterations": items,
    }


def write_model_json(sink: Sink, project: Any, iterations: Iterable[tuple[Any, Any]], **kwargs: Any) -> WriteResult:
    doc = model_document(project, iterations, **kwargs)
    sink.write_text(MODEL_FILE, json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=2) + "\n")
    return WriteResult(files=[MODEL_FILE])
