"""scan_tree / aiter_scan / count_files: order, filters, symlinks, unreadable and vanishing entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvbulk.pipeline import scan as scan_mod
from cvbulk.pipeline.scan import ScanEntry, ScanProblem, ScanStats, aiter_scan, count_files, scan_tree
from tests.corpus import (
    LOCKED_DIR, VANISHING, make_bad_corpus, make_jpeg, reads_blocked, restore_permissions, vanish_after_scan,
)


def touch(root: Path, rel: str, data: bytes = b"x") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def rels(items) -> list[str]:
    return [i.relpath for i in items]


def test_order_is_files_first_then_folders_each_sorted(tmp_path: Path) -> None:
    for rel in ["b/2.jpg", "b/1.jpg", "a/z/9.jpg", "a/y.jpg", "top.png", "Apple.jpg", "a/b.jpg"]:
        touch(tmp_path, rel)
    got = rels(scan_tree(tmp_path))
    assert got == ["Apple.jpg", "top.png", "a/b.jpg", "a/y.jpg", "a/z/9.jpg", "b/1.jpg", "b/2.jpg"]
    assert got == rels(scan_tree(tmp_path))  # deterministic


def test_entry_fields(tmp_path: Path) -> None:
    touch(tmp_path, "t/x.jpg", b"12345")
    (entry,) = list(scan_tree(tmp_path))
    assert isinstance(entry, ScanEntry)
    st = os.stat(tmp_path / "t/x.jpg")
    assert entry.path == tmp_path / "t" / "x.jpg"
    assert (entry.relpath, entry.size, entry.mtime_ns) == ("t/x.jpg", 5, st.st_mtime_ns)


def test_extensions_case_insensitive_and_others_counted(tmp_path: Path) -> None:
    for rel in ["a.JPG", "b.Png", "c.jpeg", "d.txt", "e", "f.WebP"]:
        touch(tmp_path, rel)
    stats = ScanStats()
    assert rels(scan_tree(tmp_path, stats=stats)) == ["a.JPG", "b.Png", "c.jpeg", "f.WebP"]
    assert stats.other_extensions == 2 and stats.files == 4
    assert rels(scan_tree(tmp_path, extensions=["PNG"])) == ["b.Png"]  # dot optional, any case
    assert len(rels(scan_tree(tmp_path, extensions=None))) == 6


def test_hidden_skipped_and_counted(tmp_path: Path) -> None:
    for rel in [".hidden.jpg", ".git/x.jpg", "t/.DS_Store.jpg", "t/ok.jpg"]:
        touch(tmp_path, rel)
    stats = ScanStats()
    assert rels(scan_tree(tmp_path, stats=stats)) == ["t/ok.jpg"]
    assert stats.hidden == 3
    assert rels(scan_tree(tmp_path, include_hidden=True)) == [".hidden.jpg", ".git/x.jpg", "t/.DS_Store.jpg", "t/ok.jpg"]


def test_symlinks_followed_and_loops_reported(tmp_path: Path) -> None:
    touch(tmp_path, "real/a.jpg")
    os.symlink(tmp_path / "real" / "a.jpg", tmp_path / "link.jpg")
    os.symlink(tmp_path / "real", tmp_path / "linked_dir", target_is_directory=True)
    os.symlink("..", tmp_path / "real" / "up", target_is_directory=True)  # real/up -> root: a cycle
    os.symlink("missing.jpg", tmp_path / "dangling.jpg")
    os.symlink("self.jpg", tmp_path / "self.jpg")  # a link to itself: ELOOP on stat
    items = list(scan_tree(tmp_path))
    entries = [i.relpath for i in items if isinstance(i, ScanEntry)]
    problems = {i.relpath: i.reason for i in items if isinstance(i, ScanProblem)}
    assert entries == ["link.jpg", "linked_dir/a.jpg", "real/a.jpg"]
    assert problems["real/up"] == "real/up: symlink loop, skipped"
    assert problems["linked_dir/up"] == "linked_dir/up: symlink loop, skipped"
    assert "broken symlink" in problems["dangling.jpg"]
    assert "symlink loop" in problems["self.jpg"]
    assert all("\n" not in r for r in problems.values())


def test_unreadable_folder_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path, "ok/a.jpg")
    touch(tmp_path, "locked/b.jpg")
    locked = tmp_path / "locked"
    os.chmod(locked, 0)
    try:
        if not reads_blocked(locked):  # root: chmod blocks nothing, so refuse the read ourselves
            real = scan_mod._scandir

            def scandir(path):  # type: ignore[no-untyped-def]
                if os.fspath(path) == os.fspath(locked):
                    raise PermissionError(13, "Permission denied", os.fspath(path))
                return real(path)

            monkeypatch.setattr(scan_mod, "_scandir", scandir)
        items = list(scan_tree(tmp_path))
    finally:
        os.chmod(locked, 0o755)
    assert rels(items) == ["locked", "ok/a.jpg"]
    assert items[0] == ScanProblem("locked", "folder locked: permission denied, skipped")


def test_entry_vanishing_during_walk_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path, "t/a.jpg")
    touch(tmp_path, "t/gone.jpg")
    real = scan_mod._scandir

    class Listed(list):  # a finished listing that scan_tree can use as a context manager
        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def scandir(path):  # type: ignore[no-untyped-def]
        with real(path) as it:
            listed = Listed(it)
        if os.fspath(path).endswith("t"):
            os.unlink(tmp_path / "t" / "gone.jpg")  # listed, then deleted before its stat
        return listed

    monkeypatch.setattr(scan_mod, "_scandir", scandir)
    items = list(scan_tree(tmp_path))
    assert items[0].relpath == "t/a.jpg"
    assert items[1] == ScanProblem("t/gone.jpg", "vanished during the scan")


def test_missing_root_is_a_problem(tmp_path: Path) -> None:
    (problem,) = list(scan_tree(tmp_path / "nope"))
    assert isinstance(problem, ScanProblem) and "nope" in problem.reason


def test_walk_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for d in range(5):
        touch(tmp_path, f"d{d}/x.jpg")
    calls: list[str] = []
    real = scan_mod._scandir
    monkeypatch.setattr(scan_mod, "_scandir", lambda p: (calls.append(os.fspath(p)), real(p))[1])
    gen = scan_tree(tmp_path)
    assert next(gen).relpath == "d0/x.jpg"
    assert len(calls) == 2  # the root and d0 only: the rest is read when asked for
    gen.close()


def test_vanish_after_scan_hook(tmp_path: Path) -> None:
    make_jpeg(tmp_path / VANISHING)
    with vanish_after_scan(tmp_path):
        (entry,) = list(scan_tree(tmp_path))
    assert isinstance(entry, ScanEntry) and entry.relpath == VANISHING
    assert not entry.path.exists()
    assert scan_mod.ScanEntry is ScanEntry  # restored


async def test_aiter_scan_matches_scan_tree(tmp_path: Path) -> None:
    for i in range(7):
        touch(tmp_path, f"t{i % 3}/f{i}.jpg")
    os.symlink(".", tmp_path / "t0" / "loop", target_is_directory=True)
    want = list(scan_tree(tmp_path))
    got = [item async for item in aiter_scan(tmp_path, chunk=2)]
    assert got == want
    assert rels([i async for i in aiter_scan(tmp_path, chunk=256, extensions=[".png"])]) == ["t0/loop"]
    assert count_files(tmp_path) == 7


def test_bad_corpus_scan_outcomes(tmp_path: Path) -> None:
    expected = make_bad_corpus(tmp_path, include_big=False)
    try:
        items = list(scan_tree(tmp_path))
    finally:
        restore_permissions(tmp_path)
    found = {i.relpath: i for i in items}
    for rel, outcome in expected.items():
        assert rel in found, rel
        if outcome == "skipped":
            assert isinstance(found[rel], ScanProblem), rel
            assert found[rel].reason and "\n" not in found[rel].reason
        else:
            assert isinstance(found[rel], ScanEntry), rel
    assert set(found) == set(expected)
    if LOCKED_DIR in expected:
        assert "permission denied" in found[LOCKED_DIR].reason
