"""How fast the pre-count is: ``python -m benchmarks.scan_count [N]`` (default 100,000 empty files).

Makes N empty ``.jpg`` files in a temporary folder (100 sub-folders) and times, each on a warm cache:
``count_candidates`` (listing only, no stat of a plain file), ``count_files`` and the full ``scan_tree``
(which stats every file it takes). Prints files/s for each.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from cvbulk.pipeline.scan import count_candidates, count_files, scan_tree


def _make(root: Path, n: int, folders: int = 100) -> None:
    for d in range(folders):
        (root / f"d{d:03d}").mkdir()
    for i in range(n):
        (root / f"d{i % folders:03d}" / f"img_{i:07d}.jpg").touch()


def _time(what: str, fn, n: int) -> None:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        got = fn()
        best = min(best, time.perf_counter() - t0)
    assert got == n, (what, got, n)
    print(f"{what:<18} {best:6.3f} s  {n / best:>12,.0f} files/s")


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _make(root, n)
        print(f"{n:,} empty files made in {time.perf_counter() - t0:.1f} s (best of 3 runs below)")
        _time("count_candidates", lambda: count_candidates(root), n)
        _time("count_files", lambda: count_files(root), n)
        _time("scan_tree", lambda: sum(1 for _ in scan_tree(root)), n)


if __name__ == "__main__":
    main(sys.argv[1:])
