"""The clients pace every attempt through the shared Pacer: rate per API group, 429 waits for everyone."""

from __future__ import annotations

import anyio

from cvbulk.client import ApiGroup, Pacer, RetryPolicy, TrainingClient

from ._support import EPS, ENDPOINT, KEY, TRAINING_BASE as B, VirtualClock, max_in_any_window

P = "p1"


async def test_concurrent_calls_share_the_group_rate(mock):
    clock = VirtualClock()
    pacer = Pacer.for_tier("S0", max_concurrency=16, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    mock.add("GET", f"{B}/projects/{P}/tags", payload=[], repeat=True, clock=clock, times=times)
    mock.add("POST", f"{B}/projects/{P}/train", payload={"id": "it", "name": "Iteration 1", "status": "Training"}, repeat=True, clock=clock, times=[])
    retry = RetryPolicy(sleep=clock.sleep, clock=clock)

    async def main() -> None:
        async with TrainingClient(ENDPOINT, KEY, pacer=pacer, retry=retry) as one, \
                TrainingClient(ENDPOINT, KEY, pacer=pacer, retry=retry) as two:
            async with anyio.create_task_group() as tg:
                for n in range(40):
                    tg.start_soon((one if n % 2 else two).get_tags, P)
                tg.start_soon(one.train_project, P)  # its own group: not queued behind the tags

    await clock.run(main)
    assert len(times) == 40
    assert max_in_any_window(times) <= 10
    assert max(times) >= 3.9 - EPS
    assert pacer.limiter(ApiGroup.TRAIN_PROJECT)._tat <= 0.1 + EPS  # TrainProject went at once


async def test_a_429_with_retry_after_holds_back_every_caller_of_the_group(mock):
    clock = VirtualClock()
    pacer = Pacer.for_tier("S0", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(sleep=clock.sleep, clock=clock)
    times: list[float] = []
    path = f"{B}/projects/{P}/tags"
    mock.add("GET", path, status=429, payload={"error": {"code": "429", "message": "Please retry after 3 seconds."}},
             clock=clock, times=times)
    mock.add("GET", path, payload=[], repeat=True, clock=clock, times=times)

    async def main() -> None:
        async with TrainingClient(ENDPOINT, KEY, pacer=pacer, retry=retry) as client, \
                TrainingClient(ENDPOINT, KEY, pacer=pacer, retry=retry) as other:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.get_tags, P)  # t=0: throttled, "retry after 3 seconds"
                tg.start_soon(other.get_tags, P)  # had the 0.1 s slot: must wait for the pause too
                tg.start_soon(other.get_tags, P)

    await clock.run(main)
    assert times[0] == 0.0 and len(times) == 4
    assert min(times[1:]) >= 3.0
    assert max_in_any_window(times[1:]) <= 10
    assert pacer.concurrency(ApiGroup.TRAINING) == 32  # halved from 64 by the 429
