"""scan_tree / aiter_scan / count_files / count_candidates: order, filters, symlinks, unreadable and
vanishing entries, every candidate reported with its outcome."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvbulk.pipeline import scan as scan_mod
from cvbulk.pipeline.scan import (
    ScanEntry,
    ScanProblem,
    ScanStats,
    SkipKind,
    aiter_scan,
    count_candidates,
    count_candidates_within,
    count_files,
    scan_tree,
)
from tests.corpus import (
    LOCKED_DIR,
    VANISHING,
    make_bad_corpus,
    make_jpeg,
    reads_blocked,
    restore_permissions,
    vanish_after_scan,
)


def touch(root: Path, rel: str, data: bytes = b"x") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


class Listed(list):
    """A finished listing that scan_tree can use as a context manager (stands in for os.scandir)."""

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def rels(items) -> list[str]:
    return [i.relpath for i in items]


def taken(items) -> list[str]:
    return [i.relpath for i in items if isinstance(i, ScanEntry)]


def skipped(items) -> dict[str, ScanProblem]:
    return {i.relpath: i for i in items if isinstance(i, ScanProblem)}


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
    for rel in ["a.JPG", "b.Png", "c.jpeg", "d.txt", "e", "f.WebP", "g.heic"]:
        touch(tmp_path, rel)
    stats = ScanStats()
    items = list(scan_tree(tmp_path, stats=stats))
    assert taken(items) == ["a.JPG", "b.Png", "c.jpeg", "f.WebP"]
    assert rels(items) == ["a.JPG", "b.Png", "c.jpeg", "d.txt", "e", "f.WebP", "g.heic"]  # all, in order
    other = skipped(items)
    assert other["d.txt"].reason == "not an image file (.txt), skipped"
    assert other["e"].reason == "not an image file (no extension), skipped"
    assert other["g.heic"].reason == "unsupported format .heic (Custom Vision takes jpg, png, bmp, gif; convert it first)"
    assert {p.kind for p in other.values()} == {SkipKind.UNSUPPORTED} and {p.status for p in other.values()} == {"skipped"}
    assert stats.other_extensions == 3 and stats.files == 4 and stats.problems == 3 and stats.total == 7
    assert stats.finished
    assert taken(scan_tree(tmp_path, extensions=["PNG"])) == ["b.Png"]  # dot optional, any case
    assert skipped(scan_tree(tmp_path, extensions=["PNG"]))["a.JPG"].kind == SkipKind.NOT_SELECTED
    assert len(taken(scan_tree(tmp_path, extensions=None))) == 7
    # report_skipped=False: the old quiet behaviour, only counted
    quiet = ScanStats()
    assert rels(scan_tree(tmp_path, stats=quiet, report_skipped=False)) == ["a.JPG", "b.Png", "c.jpeg", "f.WebP"]
    assert quiet.other_extensions == 3


def test_hidden_reported_once_per_folder(tmp_path: Path) -> None:
    for rel in [".hidden.jpg", ".git/x.jpg", ".git/y/z.jpg", "t/.DS_Store.jpg", "t/ok.jpg", ".cvbulk/j.sqlite"]:
        touch(tmp_path, rel)
    stats = ScanStats()
    items = list(scan_tree(tmp_path, stats=stats))
    assert taken(items) == ["t/ok.jpg"]
    other = skipped(items)
    assert set(other) == {".hidden.jpg", ".git", "t/.DS_Store.jpg"}  # .git: one entry, nothing inside
    assert other[".hidden.jpg"].reason == "hidden file, skipped (use --include-hidden)"
    assert other[".git"].reason == "hidden folder, not scanned (use --include-hidden)"
    assert stats.hidden == 3 and stats.state_folders == 1  # cvbulk's own folder: left out, not reported
    assert taken(scan_tree(tmp_path, include_hidden=True)) == [
        ".hidden.jpg", ".git/x.jpg", ".git/y/z.jpg", "t/.DS_Store.jpg", "t/ok.jpg"
    ]


def test_special_files_reported(tmp_path: Path) -> None:
    touch(tmp_path, "ok.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink(tmp_path / "pipe.jpg", tmp_path / "link_to_pipe.jpg")
    items = list(scan_tree(tmp_path))
    other = skipped(items)
    assert other["pipe.jpg"].reason == "not a regular file (FIFO), skipped"
    assert other["link_to_pipe.jpg"].reason == "not a regular file (FIFO), skipped"
    assert {p.kind for p in other.values()} == {SkipKind.SPECIAL}
    assert taken(items) == ["ok.jpg"]


def test_trailing_space_name_taken_with_a_note(tmp_path: Path) -> None:
    touch(tmp_path, "photo.jpg ")
    touch(tmp_path, "dot.png.")
    items = list(scan_tree(tmp_path))
    assert taken(items) == ["dot.png.", "photo.jpg "]
    assert all(isinstance(i, ScanEntry) and i.note and "space or a dot" in i.note for i in items)
    assert items[1].display == "photo.jpg\\x20"


def test_undecodable_name_is_a_key_and_opens(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    with open(raw, "wb") as f:
        f.write(b"12345")
    (entry,) = list(scan_tree(tmp_path))
    assert isinstance(entry, ScanEntry)
    assert entry.relpath == "caf\\xe9.jpg" and entry.display == "caf\\xe9.jpg"
    entry.relpath.encode("utf-8")  # storable in SQLite / JSON / CSV
    assert entry.path.read_bytes() == b"12345"  # the path still opens the real file


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
    assert problems["real/up"] == "symlink loop (leads back to a folder above it), skipped"
    assert problems["linked_dir/up"] == "symlink loop (leads back to a folder above it), skipped"
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
    assert items[0] == ScanProblem("locked", "folder locked: permission denied, skipped", SkipKind.UNREADABLE)


def test_entry_vanishing_during_walk_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path, "t/a.jpg")
    touch(tmp_path, "t/gone.jpg")
    real = scan_mod._scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        with real(path) as it:
            listed = Listed(it)
        if os.fspath(path).endswith("t"):
            os.unlink(tmp_path / "t" / "gone.jpg")  # listed, then deleted before its stat
        return listed

    monkeypatch.setattr(scan_mod, "_scandir", scandir)
    items = list(scan_tree(tmp_path))
    assert items[0].relpath == "t/a.jpg"
    assert items[1] == ScanProblem("t/gone.jpg", "vanished during the scan", SkipKind.VANISHED)


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
    stats = ScanStats()
    got = []
    async for item in aiter_scan(tmp_path, chunk=2, stats=stats):
        assert not stats.finished or len(got) >= len(want) - 2  # total unknown until the walk ends
        got.append(item)
    assert got == want
    assert stats.finished and stats.total == len(want)  # the final total, for the progress line
    got_png = [i async for i in aiter_scan(tmp_path, chunk=256, extensions=[".png"])]
    assert taken(got_png) == [] and skipped(got_png)["t0/loop"].kind == SkipKind.SYMLINK_LOOP
    assert count_files(tmp_path) == 7


def test_count_candidates_matches_the_scan(tmp_path: Path) -> None:
    for rel in ["a.jpg", "b.txt", ".h.jpg", ".git/x.jpg", "d/e.png", "d/f.heic", ".cvbulk/s.sqlite", "g/h/i.gif"]:
        touch(tmp_path, rel)
    os.mkfifo(tmp_path / "d" / "fifo")
    os.symlink("nowhere.jpg", tmp_path / "dangling.jpg")
    os.symlink("..", tmp_path / "d" / "up", target_is_directory=True)
    os.symlink(tmp_path / "a.jpg", tmp_path / "d" / "link.jpg")
    for kw in ({}, {"include_hidden": True}, {"report_skipped": False}, {"extensions": None}):
        stats = ScanStats()
        n = len(list(scan_tree(tmp_path, stats=stats, **kw)))
        assert count_candidates(tmp_path, **kw) == n == stats.total, kw
        assert count_candidates_within(tmp_path, 60.0, **kw) == n
    assert count_files(tmp_path) == 4  # a.jpg, d/e.png, d/link.jpg, g/h/i.gif
    ticks = iter(range(0, 10**6, 100))
    assert count_candidates_within(tmp_path, 1.0, clock=lambda: float(next(ticks))) is None  # too slow: unknown


def test_count_candidates_never_stats_plain_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(20):
        touch(tmp_path, f"d/{i}.jpg")
    touch(tmp_path, "d/notes.txt")
    stat_calls: list[str] = []
    real = scan_mod._scandir

    class Spy:  # a DirEntry that records stat() calls
        def __init__(self, entry: os.DirEntry) -> None:
            self._e, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self, **kw: bool) -> bool:
            return self._e.is_dir(**kw)

        def is_file(self, **kw: bool) -> bool:
            return self._e.is_file(**kw)

        def is_symlink(self) -> bool:
            return self._e.is_symlink()

        def stat(self, **kw: bool) -> os.stat_result:
            stat_calls.append(self.name)
            return self._e.stat(**kw)

    def scandir(path):  # type: ignore[no-untyped-def]
        with real(path) as it:
            return Listed(Spy(e) for e in it)

    monkeypatch.setattr(scan_mod, "_scandir", scandir)
    assert count_candidates(tmp_path) == 21
    assert stat_calls == ["d"]  # folders only (the loop check needs device and inode); never a file
    assert len(list(scan_tree(tmp_path))) == 21
    assert len(stat_calls) == 1 + 1 + 20  # the scan itself stats the files it takes (size, mtime), not the others


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
