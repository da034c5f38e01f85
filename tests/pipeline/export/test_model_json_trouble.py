"""model.json is the model's history, not the data: an iteration whose performance the service cannot give
(an error after the client's retries, or no answer at all) is written without it, with the reason, and the
export of every image and label file still completes (it failed the whole run at its very end, after every
download, with no label file written). model.json also says when it was written."""

from __future__ import annotations

import json

import anyio
import pytest

from cvbulk.client import Iteration
from cvbulk.client._errors import ServerError
from cvbulk.pipeline import export as export_module
from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("trouble", ["error", "silence"])
async def test_performance_that_cannot_be_had_does_not_stop_the_export(tmp_path, training_client, monkeypatch, trouble):
    client = training_client
    pid = await build_project(client, f"perf-{trouble}", "multiclass", 8)
    done = Iteration.from_json({"id": "11111111-1111-1111-1111-111111111111", "name": "Iteration 1",
                                "status": "Completed", "created": "2026-11-30T10:00:00Z"})

    async def iterations(project_id):
        return [done]

    async def performance(project_id, iteration_id, **kw):
        if trouble == "error":
            raise ServerError("GetIterationPerformance: HTTP 500 - boom", status=500)
        await anyio.sleep(3600)

    monkeypatch.setattr(client, "get_iterations", iterations)
    monkeypatch.setattr(client, "get_iteration_performance", performance)
    monkeypatch.setattr(export_module, "PERFORMANCE_DEADLINE", 0.5)
    with anyio.fail_after(30):
        result = await run_export(client, ExportOptions(pid, tmp_path / "out", "csv"))
    assert result.ok, result.summary["count_check"]
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    (entry,) = model["iterations"]
    assert entry["performance"] is None and entry["performance_error"]
    assert model["exported_at"]
    assert (tmp_path / "out" / "labels.csv").exists()
