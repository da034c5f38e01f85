"""A run-wide error (a published model gone, a wrong key) stops a prediction run, but what was already scored
is written first (flaky before: ``test_engine_stops_on_run_wide_error_but_keeps_what_was_scored``).

The error used to be raised into the task group that holds the recorder, which cancelled it half-way: the
outcomes still queued for it were lost whenever the recorder was busy writing when the error came (a slow
disk, a loaded machine). This test makes the recorder busy at exactly that moment, without sleeping: its
first write waits (in its worker thread) until the scorer has raised.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from cvbulk.client._errors import NotFoundError
from cvbulk.pipeline._predict_engine import Outcome, Prepared, WorkItem, run_engine
from cvbulk.pipeline.journal import PREDICTED

pytestmark = pytest.mark.timeout(30)


async def test_outcomes_queued_behind_a_busy_recorder_are_written_before_the_error():
    items = [WorkItem(f"d/{i}.jpg", Path(f"/nowhere/{i}.jpg"), 100 + i, i) for i in range(50)]
    raised = threading.Event()
    written: list[Outcome] = []
    calls = 0

    async def source():
        for item in items:
            yield item

    async def score(data) -> str:
        nonlocal calls
        calls += 1
        if calls > 5:
            raised.set()
            raise NotFoundError("published name not found", status=404, code="NotFoundIteration")
        await anyio.sleep(0)  # let the recorder take the first outcome alone
        return "ok"

    def record(batch) -> None:
        raised.wait(10)  # busy writing while the scorer meets the run-wide error
        written.extend(batch)

    with pytest.raises(NotFoundError):
        await run_engine(source(), prepare=lambda it: Prepared(it, b"x", "sha"), score=score, record=record, workers=1)
    assert [o.status for o in written] == [PREDICTED] * 5
