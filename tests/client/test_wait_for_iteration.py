"""wait_for_iteration: poll until Completed; Failed and a timeout are clear errors (virtual time)."""

from __future__ import annotations

import pytest

from cvbulk.client import Iteration, TrainingFailedError, TrainingTimeoutError

from ._support import TRAINING_BASE as B

P = "p1"
IT = "it1"
PATH = f"{B}/projects/{P}/iterations/{IT}"


def state(status: str) -> dict:
    return {"id": IT, "name": "Iteration 1", "status": status, "projectId": P}


async def test_returns_the_completed_iteration_and_reports_each_poll(training, mock, clock):
    for status in ("Training", "Training", "Training", "Completed"):
        mock.add("GET", PATH, payload=state(status))
    seen: list[Iteration] = []
    done = await training.wait_for_iteration(P, IT, poll=0.5, on_poll=seen.append)
    assert done.status == "Completed" and done.id == IT
    assert [i.status for i in seen] == ["Training", "Training", "Training", "Completed"]
    assert clock.sleeps == pytest.approx([0.2, 0.3, 0.45])  # grows by half up to poll


async def test_failed_training_is_an_error_with_the_iteration(training, mock, clock):
    mock.add("GET", PATH, payload=state("Training"))
    mock.add("GET", PATH, payload=state("Failed"))
    with pytest.raises(TrainingFailedError) as info:
        await training.wait_for_iteration(P, IT)
    assert not isinstance(info.value, TrainingTimeoutError)
    assert info.value.iteration.status == "Failed" and "failed" in str(info.value) and IT in str(info.value)


async def test_timeout_says_training_goes_on(training, mock, clock):
    mock.add("GET", PATH, payload=state("Training"), repeat=True)
    with pytest.raises(TrainingTimeoutError) as info:
        await training.wait_for_iteration(P, IT, poll=2.0, timeout=10.0)
    assert clock.now <= 10.0 and "still Training after 10 s" in str(info.value)
    assert info.value.iteration.status == "Training"


async def test_already_completed_needs_no_wait(training, mock, clock):
    mock.add("GET", PATH, payload=state("Completed"))
    assert (await training.wait_for_iteration(P, IT)).status == "Completed"
    assert clock.sleeps == []


async def test_poll_must_be_positive(training):
    with pytest.raises(ValueError):
        await training.wait_for_iteration(P, IT, poll=0)
