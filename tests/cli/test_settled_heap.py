"""``settled_heap``: start-up's objects frozen out of the garbage collector's walks for a job, and back after."""

import gc

from cvbulk.cli._common import settled_heap


def test_the_heap_is_frozen_for_the_job_and_unfrozen_after():
    before = gc.get_freeze_count()
    with settled_heap():
        assert gc.get_freeze_count() > max(before, 10_000)  # the modules and tables loaded so far
    assert gc.get_freeze_count() == 0
