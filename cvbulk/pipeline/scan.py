"""Lazy, deterministic walk of an image tree.

The walk never lists the whole tree: it holds the sorted entries of the directory being read plus, for each
ancestor, the names of the sub-folders still to visit. Order is defined: within a folder, files first
(sorted by name, code-point order), then sub-folders (sorted by name), depth first. Problems (symlink loops,
permission denied, entries that vanish during the walk) are yielded as :class:`ScanProblem` values, never
raised, so one bad folder does not stop a run of a million files.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

__all__ = [
    "IMAGE_EXTENSIONS",
    "ScanEntry",
    "ScanProblem",
    "ScanStats",
    "scan_tree",
    "aiter_scan",
    "count_files",
]

#: Lower-case suffixes scanned by default: what the service takes, plus formats prepare converts.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff"}
)

# Looked up at call time so a test can make a folder unreadable even when running as root
# (where chmod 000 blocks nothing).
_scandir = os.scandir


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """A file found by the scan. ``relpath`` is posix-style and relative to the scanned root."""

    path: Path
    relpath: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """An entry the scan could not use; ``reason`` is one line for a person."""

    relpath: str
    reason: str


@dataclass(slots=True)
class ScanStats:
    """Counters a caller may pass to :func:`scan_tree` to learn what was silently left out."""

    files: int = 0            # ScanEntry values yielded
    directories: int = 0      # folders read (the root included)
    problems: int = 0         # ScanProblem values yielded
    hidden: int = 0           # hidden files and folders skipped
    other_extensions: int = 0 # files skipped because of their extension
    special: int = 0          # sockets, fifos, devices skipped


def _normalise_extensions(extensions: Iterable[str] | None) -> frozenset[str] | None:
    if extensions is None:
        return None  # None means every file
    out = set()
    for ext in extensions:
        ext = ext.strip().lower()
        if ext and not ext.startswith("."):
            ext = "." + ext
        out.add(ext)
    return frozenset(out)


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith("."):
        return True
    if sys.platform == "win32":  # pragma: no cover - the hidden attribute exists only on Windows
        try:
            attrs = entry.stat(follow_symlinks=False).st_file_attributes  # type: ignore[attr-defined]
        except OSError:
            return False
        return bool(attrs & stat_mod.FILE_ATTRIBUTE_HIDDEN)  # type: ignore[attr-defined]
    return False


def _reason(exc: OSError, what: str) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{what} vanished during the scan"
    if isinstance(exc, PermissionError):
        return f"{what}: permission denied, skipped"
    detail = exc.strerror or exc.__class__.__name__
    return f"{what}: {detail.lower()}, skipped"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _read_dir(
    dirpath: str, rel: str, exts: frozenset[str] | None, include_hidden: bool, stats: ScanStats
) -> tuple[list[ScanEntry | ScanProblem], list[tuple[str, os.stat_result | None]], ScanProblem | None]:
    """Read one folder: its files (as entries/problems, sorted) and its sub-folder names (sorted)."""
    try:
        with _scandir(dirpath) as it:
            raw = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        what = f"folder {rel or '.'}"
        return [], [], ScanProblem(rel or ".", _reason(exc, what))
    stats.directories += 1
    files: list[ScanEntry | ScanProblem] = []
    subdirs: list[tuple[str, os.stat_result | None]] = []
    for entry in raw:
        name = entry.name
        relpath = _join(rel, name)
        if not include_hidden and _is_hidden(entry):
            stats.hidden += 1
            continue
        try:
            is_dir = entry.is_dir()  # from the directory listing itself: no system call unless a symlink
        except OSError:
            is_dir = False
        if not is_dir and exts is not None and os.path.splitext(name)[1].lower() not in exts:
            stats.other_extensions += 1  # decided by name alone: never stat a file we will not use
            continue
        try:
            st = entry.stat()  # follows symlinks: a link to a file is a file
        except FileNotFoundError:
            if entry.is_symlink():
                files.append(ScanProblem(relpath, "broken symlink (its target does not exist), skipped"))
            else:
                files.append(ScanProblem(relpath, "vanished during the scan"))
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink that points at itself (or a cycle of links)
                files.append(ScanProblem(relpath, f"{relpath}: symlink loop, skipped"))
            else:
                files.append(ScanProblem(relpath, _reason(exc, relpath)))
            continue
        if stat_mod.S_ISDIR(st.st_mode):
            subdirs.append((name, st))  # kept for the loop check when the folder is entered
        elif stat_mod.S_ISREG(st.st_mode):
            files.append(ScanEntry(Path(entry.path), relpath, st.st_size, st.st_mtime_ns))
        else:
            stats.special += 1
    return files, subdirs, None


def scan_tree(
    root: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
    stats: ScanStats | None = None,
) -> Iterator[ScanEntry | ScanProblem]:
    """Walk ``root`` lazily and yield a :class:`ScanEntry` per image file, a :class:`ScanProblem` per bad entry.

    Symlinks to files are followed; symlinked folders are followed unless they lead back to a folder on
    the current path (a loop, reported as a problem). ``extensions=None`` yields every regular file.
    """
    stats = stats if stats is not None else ScanStats()
    exts = _normalise_extensions(extensions)
    root_path = os.fspath(root)
    try:
        root_st = os.stat(root_path)
    except FileNotFoundError:
        stats.problems += 1
        yield ScanProblem(".", f"root {root_path} does not exist")
        return
    except OSError as exc:
        stats.problems += 1
        yield ScanProblem(".", _reason(exc, f"root {root_path}"))
        return
    if not stat_mod.S_ISDIR(root_st.st_mode):
        stats.problems += 1
        yield ScanProblem(".", f"root {root_path} is not a folder")
        return

    # Each frame: (dirpath, relpath, (dev, ino) of every folder from the root down to it, pending sub-folders).
    Frame = tuple[str, str, frozenset[tuple[int, int]], Iterator[tuple[str, "os.stat_result | None"]]]
    stack: list[Frame] = []

    def enter(dirpath: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[ScanEntry | ScanProblem]:
        files, subdirs, problem = _read_dir(dirpath, rel, exts, include_hidden, stats)
        if problem is not None:
            stats.problems += 1
            yield problem
            return
        for item in files:
            if isinstance(item, ScanProblem):
                stats.problems += 1
            else:
                stats.files += 1
            yield item
        stack.append((dirpath, rel, ancestors, iter(subdirs)))

    yield from enter(root_path, "", frozenset({(root_st.st_dev, root_st.st_ino)}))
    while stack:
        dirpath, rel, ancestors, pending = stack[-1]
        nxt = next(pending, None)
        if nxt is None:
            stack.pop()
            continue
        name, link_st = nxt
        sub_path = os.path.join(dirpath, name)
        sub_rel = _join(rel, name)
        try:
            st = link_st if link_st is not None else os.stat(sub_path)
        except OSError as exc:
            stats.problems += 1
            yield ScanProblem(sub_rel, _reason(exc, f"folder {sub_rel}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            stats.problems += 1
            yield ScanProblem(sub_rel, f"{sub_rel}: symlink loop, skipped")
            continue
        yield from enter(sub_path, sub_rel, ancestors | {key})


async def aiter_scan(
    root: str | os.PathLike[str], *, chunk: int = 256, **kw: object
) -> AsyncIterator[ScanEntry | ScanProblem]:
    """:func:`scan_tree` driven in a worker thread, ``chunk`` items per hop, so the event loop never blocks on disk."""
    gen = scan_tree(root, **kw)  # type: ignore[arg-type]
    chunk = max(1, chunk)

    def take() -> list[ScanEntry | ScanProblem]:
        out: list[ScanEntry | ScanProblem] = []
        for item in gen:
            out.append(item)
            if len(out) >= chunk:
                break
        return out

    try:
        while True:
            items = await anyio.to_thread.run_sync(take)
            for item in items:
                yield item
            if len(items) < chunk:
                return
    finally:
        gen.close()


def count_files(
    root: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
) -> int:
    """How many files :func:`scan_tree` would yield (a quick pre-count for a progress bar; blocking)."""
    return sum(
        1 for item in scan_tree(root, extensions=extensions, include_hidden=include_hidden)
        if isinstance(item, ScanEntry)
    )
