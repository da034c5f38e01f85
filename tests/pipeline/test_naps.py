"""Wake-up coalescing (pipeline._naps): fewer wake-ups, every timer and answer served, none early."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import anyio
import pytest

from cvbulk.pipeline._naps import NappingSelector, napping_loop, naps

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no napping loop on Windows")


class _Counting(NappingSelector):
    """Counts the waits that ended (the loop's wake-ups, ready-queue polls left out)."""

    wakes = 0

    def select(self, timeout=None):  # type: ignore[no-untyped-def]
        ready = super().select(timeout)
        if timeout is None or timeout > 0:
            self.wakes += 1
        return ready


def _run(main, selector: NappingSelector):  # type: ignore[no-untyped-def]
    loop = asyncio.SelectorEventLoop(selector)
    loop.napper = selector  # type: ignore[attr-defined]  # what naps() looks for
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_timers_coalesce_never_early_at_most_one_quantum_late() -> None:
    quantum = 0.05
    offsets = [0.003 * k for k in range(1, 61)]  # 60 timers over 0.18 s
    fired: list[tuple[float, float]] = []

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        with naps(quantum) as on:
            start = loop.time()
            done = loop.create_future()
            for off in offsets:
                loop.call_at(start + off, lambda due=start + off: fired.append((due, loop.time())))
            loop.call_at(start + offsets[-1], done.set_result, None)
            await done
        return on

    selector = _Counting()
    assert _run(main, selector) is True
    assert len(fired) == len(offsets)
    for due, at in fired:
        assert at >= due - 1e-3  # never early
        assert at <= due + quantum + 0.03  # at most a quantum late (and some scheduling slack)
    # 60 timers over ~4 cells: a few wake-ups, not 60
    assert selector.wakes <= 12


def test_io_arriving_within_a_cell_is_served_in_one_wake_up() -> None:
    quantum = 0.05
    a, b = socket.socketpair()
    a.setblocking(False)
    calls: list[tuple[float, int]] = []
    received = 0

    def sender() -> None:
        for _ in range(5):
            b.send(b"x")
            time.sleep(0.004)

    async def main() -> float:
        nonlocal received
        loop = asyncio.get_running_loop()
        with naps(quantum):
            done = asyncio.Event()

            def readable() -> None:
                nonlocal received
                data = a.recv(100)
                received += len(data)
                calls.append((loop.time(), len(data)))
                if received == 5:
                    done.set()

            loop.add_reader(a.fileno(), readable)
            await asyncio.sleep(0)  # a first wake-up in this cell: what follows waits for the cell's end
            started = loop.time()
            thread = threading.Thread(target=sender)
            thread.start()
            await asyncio.wait_for(done.wait(), 2)
            thread.join()
            loop.remove_reader(a.fileno())
            return started

    try:
        started = _run(main, _Counting())
    finally:
        a.close()
        b.close()
    assert received == 5
    assert len(calls) < 5  # bytes sent 4 ms apart were read together, not one wake-up each
    assert calls[-1][0] - started < 0.02 + 2 * quantum  # and at most about a quantum late


def test_quantum_zero_and_foreign_loops_are_left_alone() -> None:
    async def main() -> bool:
        with naps(0.25) as on:
            return on

    assert asyncio.run(main()) is False  # not a napping loop
    assert anyio.run(main, backend_options={"loop_factory": napping_loop}) is True

    async def zero() -> bool:
        with naps(0) as on:
            t = time.monotonic()
            await asyncio.sleep(0.001)
            assert time.monotonic() - t < 0.2
            return on

    assert anyio.run(zero, backend_options={"loop_factory": napping_loop}) is False


def test_quantum_is_restored_after_the_block() -> None:
    async def main() -> tuple[float, float]:
        napper = asyncio.get_running_loop().napper  # type: ignore[attr-defined]
        with naps(0.1):
            inside = napper.quantum
        return inside, napper.quantum

    assert anyio.run(main, backend_options={"loop_factory": napping_loop}) == (0.1, 0.0)
