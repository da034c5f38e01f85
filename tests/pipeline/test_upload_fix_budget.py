"""The pixel budget that bounds the memory of fixes running at once in an upload's worker threads."""

from __future__ import annotations

import threading

import pytest

from cvbulk.pipeline.prepare import FIX_PIXELS, PixelBudget

pytestmark = pytest.mark.timeout(10)


def _holder(budget: PixelBudget, pixels: int, entered: threading.Event, leave: threading.Event) -> threading.Thread:
    def run() -> None:
        with budget.hold(pixels):
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_fix_waits_until_its_pixels_fit():
    budget = PixelBudget(10)
    first_in, first_out, second_in, second_out = (threading.Event() for _ in range(4))
    a = _holder(budget, 6, first_in, first_out)
    assert first_in.wait(5)
    b = _holder(budget, 6, second_in, second_out)
    assert not second_in.wait(0.2)  # 6 + 6 > 10: the second waits
    first_out.set()
    assert second_in.wait(5)  # and goes once the first is done
    second_out.set()
    a.join(5), b.join(5)


def test_small_fixes_share_and_one_over_the_budget_runs_alone():
    budget = PixelBudget(10)
    events = [(threading.Event(), threading.Event()) for _ in range(3)]
    threads = [_holder(budget, 4, e[0], e[1]) for e in events[:2]]
    assert events[0][0].wait(5) and events[1][0].wait(5)  # 4 + 4 fit together
    huge_in, huge_out = threading.Event(), threading.Event()
    threads.append(_holder(budget, 50, huge_in, huge_out))
    assert not huge_in.wait(0.2)
    for _, out in events[:2]:
        out.set()
    assert huge_in.wait(5)  # alone, though larger than the budget
    huge_out.set()
    for t in threads:
        t.join(5)


def test_the_upload_budget_takes_one_very_wide_photo_at_a_time():
    assert 10_600 * 500 <= FIX_PIXELS.limit < 2 * 10_600 * 500
