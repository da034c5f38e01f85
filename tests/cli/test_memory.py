"""The command line caps glibc's malloc arenas (a process-wide setting the library leaves alone)."""

from __future__ import annotations

import sys

import pytest

from cvbulk.cli._memory import limit_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_arenas_are_capped_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() in (True, False)  # False on a libc without mallopt (musl)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False
