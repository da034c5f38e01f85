"""The scorers' queue of the scoring stages (``_predict_engine._Handoff``): bounded, in order, closed by its last
sender, and a wake-up never lost to a cancelled scorer."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from cvbulk.pipeline._predict_engine import _Handoff

pytestmark = pytest.mark.timeout(10)


async def test_items_arrive_in_order_and_the_scorers_end_after_the_last_sender() -> None:
    queue = _Handoff(4, senders=2)
    got: list[int] = []

    async def scorer() -> None:
        while (item := await queue.get()) is not None:
            got.append(item)

    async def sender(start: int) -> None:
        try:
            for k in range(start, start + 50):
                await queue.put(k)
                if k % 7 == 0:
                    await anyio.sleep(0)
        finally:
            queue.sender_done()

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(scorer)
        tg.start_soon(sender, 0)
        tg.start_soon(sender, 100)
    assert sorted(got) == list(range(50)) + list(range(100, 150))
    assert [k for k in got if k < 100] == list(range(50))  # one sender's items keep their order


async def test_a_full_queue_holds_its_sender_back() -> None:
    queue = _Handoff(2, senders=1)
    await queue.put(1)
    await queue.put(2)
    with anyio.move_on_after(0.05) as scope:
        await queue.put(3)
    assert scope.cancelled_caught and list(queue.items) == [1, 2]
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.put, 3)
        await anyio.sleep(0.01)
        assert await queue.get() == 1  # room: the waiting sender goes on
        await anyio.sleep(0.01)
    assert list(queue.items) == [2, 3]


async def test_a_woken_scorer_that_is_cancelled_passes_the_item_on() -> None:
    queue = _Handoff(4, senders=1)
    got: list[int] = []

    async def scorer(scope: anyio.CancelScope | None) -> None:
        if scope is None:
            got.append(await queue.get())
            return
        with scope:
            got.append(await queue.get())

    doomed = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scorer, doomed)  # waits first: the put wakes it
        await anyio.sleep(0.01)
        tg.start_soon(scorer, None)
        await anyio.sleep(0.01)
        await queue.put(7)
        doomed.cancel()  # woken, and cancelled before (or after) it ran
        await anyio.sleep(0.01)
        queue.sender_done()
    assert 7 in got and got.count(7) == 1  # taken once, by one scorer or the other: never left waiting


async def test_the_last_sender_done_wakes_every_waiting_scorer() -> None:
    queue = _Handoff(4, senders=1)
    ended: list[object] = []

    async def scorer() -> None:
        ended.append(await queue.get())

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(scorer)
        await anyio.sleep(0.01)
        queue.sender_done()
    assert ended == [None, None, None]
    assert not asyncio.iscoroutine(ended[0])


async def test_a_wake_up_is_passed_on_when_its_scorer_is_cancelled_before_it_runs() -> None:
    queue = _Handoff(4, senders=1)
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # both wait, first in line
    await queue.put(7)  # wakes the first...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == 7
    assert first.cancelled()


async def test_a_full_queue_with_a_low_mark_lets_its_sender_in_only_once_it_has_fallen_to_it() -> None:
    queue = _Handoff(4, senders=1, low=2)  # the feed's queue: refilled from half, not per item
    for k in range(4):
        await queue.put(k)
    sent = anyio.Event()

    async def sender() -> None:
        await queue.put(4)
        sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        assert await queue.get() == 0  # 3 left: above the mark, the sender still waits
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert queue.take_ready(1) == [1]  # 2 left: at the mark
        await sent.wait()
    queue.sender_done()
    assert queue.take_ready(10) == [2, 3, 4]
    assert await queue.get() is None
