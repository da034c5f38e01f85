"""Issue 17, "Counts that are true" and "One bad item must not stop the rest", for the scan.

Before the fix, the scan passed over hidden files, FIFOs/sockets, unsupported extensions (``.heic``,
``.avif``, ``.txt``) and names ending in a space (``photo.jpg `` has the extension ``.jpg ``) without a
trace: they were only counted, so a report could not list them. A name that is not valid UTF-8 came out
as a ``str`` with lone surrogates, which SQLite, JSON and a UTF-8 CSV refuse: one such name stopped an
upload before anything was sent. Each test says what failed on that code.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import unicodedata
from pathlib import Path

import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from cvbulk.pipeline import scan as scan_mod
from cvbulk.pipeline.names import display_name, key_for, name_from_key
from cvbulk.pipeline.scan import (
    ScanEntry,
    ScanProblem,
    ScanStats,
    SkipKind,
    count_candidates,
    scan_tree,
)
from tests.corpus import make_jpeg

from .conftest import cli_env, cvbulk, journal_rows

pytestmark = pytest.mark.timeout(90)

UNDECODABLE = b"caf\xe9.jpg"


def _hostile_tree(root: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> dict[str, str]:
    """A folder of awkward candidates under ``root/a``; returns key -> "taken" or the expected skip kind."""
    d = root / "a"
    d.mkdir(parents=True)
    expected: dict[str, str] = {}

    def image(name: str | bytes, seed: int) -> None:
        raw = os.fsencode(d) + b"/" + (name if isinstance(name, bytes) else os.fsencode(name))
        make_jpeg(Path(os.fsdecode(raw)), (16, 16), seed)

    image("ok.jpg", 1)
    expected["a/ok.jpg"] = "taken"
    image(UNDECODABLE, 2)
    expected["a/caf\\xe9.jpg"] = "taken"
    image("photo.jpg ", 3)  # a trailing space: taken, with a note
    expected["a/photo.jpg "] = "taken"
    image("back\\slash.jpg", 4)
    expected["a/back\\\\slash.jpg"] = "taken"
    image(".hidden.jpg", 5)
    expected["a/.hidden.jpg"] = SkipKind.HIDDEN
    (d / ".thumbs").mkdir()
    for i in range(3):
        image(f".thumbs/t{i}.jpg", 10 + i)
    expected["a/.thumbs"] = SkipKind.HIDDEN  # one entry for the folder
    for name in ("IMG_0001.heic", "pic.avif", "notes.txt", "README"):
        (d / name).write_bytes(b"not for us")
        expected[f"a/{name}"] = SkipKind.UNSUPPORTED
    os.mkfifo(d / "pipe.jpg")
    expected["a/pipe.jpg"] = SkipKind.SPECIAL
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.fspath(d / "s.jpg"))
        expected["a/s.jpg"] = SkipKind.SPECIAL
    except OSError:  # pragma: no cover - a path too long for AF_UNIX
        pass
    finally:
        sock.close()
    os.symlink("gone.jpg", d / "dangling.jpg")
    expected["a/dangling.jpg"] = SkipKind.BROKEN_LINK
    os.symlink(".", d / "loop", target_is_directory=True)
    expected["a/loop"] = SkipKind.SYMLINK_LOOP
    os.symlink("self.jpg", d / "self.jpg")
    expected["a/self.jpg"] = SkipKind.SYMLINK_LOOP
    image("locked/in.jpg", 20)
    if monkeypatch is not None:  # in-process: refuse the read even as root (chmod blocks nothing there)
        real = scan_mod._scandir
        locked = os.fspath(d / "locked")

        def scandir(path):  # type: ignore[no-untyped-def]
            if os.fspath(path) == locked:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)

        monkeypatch.setattr(scan_mod, "_scandir", scandir)
        expected["a/locked"] = SkipKind.UNREADABLE
    else:
        expected["a/locked/in.jpg"] = "taken"
    (root / ".cvbulk").mkdir()
    (root / ".cvbulk" / "state.sqlite").write_bytes(b"")  # cvbulk's own: neither taken nor reported
    return expected


def test_every_candidate_is_reported_once_with_its_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: 7 of the 16 candidates came out (measured on the old scan: ok, caf, back\\slash, the loops,
    the dangling link, the locked folder); hidden files and folders, the .heic/.avif/.txt files, the
    FIFO and the socket were silently absent, and ``photo.jpg `` was dropped as "another extension"."""
    expected = _hostile_tree(tmp_path, monkeypatch)
    stats = ScanStats()
    items = list(scan_tree(tmp_path, stats=stats))
    keys = [i.relpath for i in items]
    assert sorted(keys) == sorted(expected), set(keys) ^ set(expected)
    assert len(keys) == len(set(keys))  # exactly once each
    for item in items:
        want = expected[item.relpath]
        if want == "taken":
            assert isinstance(item, ScanEntry), item
        else:
            assert isinstance(item, ScanProblem) and item.kind == want and item.status == "skipped", item
            by_rule = want in (SkipKind.HIDDEN, SkipKind.UNSUPPORTED, SkipKind.SPECIAL)
            assert item.needs_attention is not by_rule, item
            reason = item.reason
            assert reason and "\n" not in reason and len(reason) < 200, item
    reasons = {i.relpath: i.reason for i in items if isinstance(i, ScanProblem)}
    assert reasons["a/IMG_0001.heic"] == (
        "unsupported format .heic (Custom Vision takes jpg, png, bmp, gif; convert it first)"
    )
    assert reasons["a/pipe.jpg"] == "not a regular file (FIFO), skipped"
    assert reasons["a/.hidden.jpg"] == "hidden file, skipped (use --include-hidden)"
    assert stats.finished and stats.total == len(items)
    assert count_candidates(tmp_path) == len(items)  # the true total, known before the scan
    by_key = {i.relpath: i for i in items}
    trailing = by_key["a/photo.jpg "]
    assert isinstance(trailing, ScanEntry) and trailing.note and trailing.display == "a/photo.jpg\\x20"


def test_undecodable_name_is_stored_and_reported_losslessly(tmp_path: Path) -> None:
    """Before: relpath was 'a/caf\\udce9.jpg'; ``sqlite3`` and ``json`` refused it (UnicodeEncodeError)."""
    _hostile_tree(tmp_path)
    (entry,) = [i for i in scan_tree(tmp_path) if isinstance(i, ScanEntry) and "caf" in i.relpath]
    assert entry.relpath == "a/caf\\xe9.jpg" and entry.display == "a/caf\\xe9.jpg"
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k text primary key)")
    db.execute("insert into t values (?)", (entry.relpath,))
    (back,) = db.execute("select k from t").fetchone()
    json.dumps(back, ensure_ascii=False).encode("utf-8")
    # Lossless: the key gives back the exact bytes of the name, and the path opens the file.
    assert os.fsencode(name_from_key(back)) == b"a/" + UNDECODABLE
    assert entry.path.read_bytes()[:2] == b"\xff\xd8"


def test_keys_are_lossless_unique_and_storable() -> None:
    """Every byte name (all 254 single bytes, and random byte strings) maps to a UTF-8, one-line key that
    gives the name back, and no two names share a key. Before: no key form existed."""
    rng = random.Random(17)
    names = [bytes([b]) for b in range(1, 256) if b != ord("/")]
    names += [rng.randbytes(rng.randrange(1, 12)).replace(b"/", b"_").replace(b"\0", b"_") for _ in range(3000)]
    names += [b"caf\xc3\xa9", b"caf\xe9", b"caf\\xe9", b"a\\\\b", b"\\", b"x\\u0085", "x\u0085".encode(), b"\xed\xb3\xa9"]
    seen: dict[str, bytes] = {}
    for raw in names:
        key = key_for(raw)
        key.encode("utf-8")  # strict
        assert "\n" not in key and "\r" not in key and "\x1b" not in key
        assert os.fsencode(name_from_key(key)) == raw, raw
        assert seen.setdefault(key, raw) == raw, (raw, seen[key])
        shown = display_name(key)
        assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in shown), (raw, shown)
    assert key_for("plain/é.jpg") == "plain/é.jpg"  # a clean name is its own key (journals stay valid)


def test_display_exposes_spoofing_characters() -> None:
    assert display_name("photo\u202egpj.exe") == "photo\\u202egpj.exe"  # right-to-left override
    assert display_name("a\tb") == "a\\x09b"  # a raw name given by mistake is still escaped
    assert display_name(" lead/trail ") == "\\x20lead/trail\\x20"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-scan")
    with EmulatorThread(EmulatorConfig(data_dir=tmp / "emulator", seed=18)) as emu:
        yield emu


def test_upload_records_every_candidate_and_sends_the_undecodable_name(emu, tmp_path: Path) -> None:
    """End to end through ``cvbulk upload`` (as a process; the locked folder is readable as root, so it is
    expected taken there). Before: 'a/caf\\udce9.jpg' stopped the upload before anything was sent, and the
    skipped candidates were absent from the state file."""
    root = tmp_path / "tree"
    expected = _hostile_tree(root)
    if os.geteuid() != 0:  # pragma: no cover - as a normal user chmod 000 does block the read
        os.chmod(root / "a" / "locked", 0)
        expected.pop("a/locked/in.jpg")
        expected["a/locked"] = SkipKind.UNREADABLE
    state = tmp_path / "state.sqlite"
    try:
        done = cvbulk("upload", str(root), "--project", "hostile", "--create", "--tier", "unlimited",
                      "--state", str(state), "--report", str(tmp_path / "report.json"),
                      env=cli_env(emu), cwd=tmp_path, timeout=80)
    finally:
        os.chmod(root / "a" / "locked", 0o755)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 1), done.stderr[-2000:]
    rows = journal_rows(state)
    assert set(rows) == set(expected), set(rows) ^ set(expected)  # every candidate: one row
    for key, want in expected.items():
        status = rows[key]["status"]
        if want == "taken":
            assert status == "uploaded", (key, status, rows[key]["reason"])
        else:
            assert status == "skipped" and rows[key]["reason"], (key, rows[key])
