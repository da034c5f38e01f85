"""What a job returns: the same shape for upload, predict, export and migrate (the CLI reads these fields,
never the report's insides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["JobResult", "UploadResult", "PredictResult", "ExportResult", "MigrateResult"]


@dataclass(frozen=True)
class JobResult:
    """``ok``: every item reached a final, success-like outcome (nothing failed, nothing left to retry).

    ``counts``: this run's outcomes by status; ``failures``: one dict per failed item (path, status,
    reason); ``report``: the whole JSON report as written to ``report_file``.
    """

    ok: bool
    report: dict[str, Any]
    state_file: Path | None = None
    report_file: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.report.get("counts", {}))

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.report.get("failures", []))

    @property
    def summary(self) -> dict[str, Any]:
        """The job's own figures (the report's ``extra``)."""
        return dict(self.report.get("extra", {}))


@dataclass(frozen=True)
class UploadResult(JobResult):
    dry_run: bool = False


@dataclass(frozen=True)
class PredictResult(JobResult):
    output: Path | None = None


@dataclass(frozen=True)
class ExportResult(JobResult):
    out_dir: Path | None = None


@dataclass(frozen=True)
class MigrateResult(JobResult):
    comparison: dict[str, Any] = field(default_factory=dict)
