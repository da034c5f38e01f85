"""Lazy, deterministic walk of an image tree that accounts for every candidate.

The walk never lists the whole tree: it holds the sorted entries of the directory being read plus, for each
ancestor, the names of the sub-folders still to visit. Order is defined: within a folder, files first
(sorted by name, code-point order), then sub-folders (sorted by name), depth first.

Every entry the user pointed at ends as exactly one yielded value: a :class:`ScanEntry` (a file to work on)
or a :class:`ScanProblem` (status "skipped", with a one-line ``reason`` and a ``kind``): hidden files and
folders, FIFOs/sockets/devices, unsupported formats (``.heic``, ``.txt`` ...), broken symlinks, symlink
loops, unreadable folders, entries that vanish during the walk. Nothing is raised for one bad entry, so one
odd file never stops a run of a million; nothing is dropped silently, so the report can list it.

Names are data: ``relpath`` is the lossless key of :mod:`cvbulk.pipeline.names` (valid UTF-8 even for a
name that is not), ``path`` the real path to open, ``display`` the form to show a person.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import sys
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path

import anyio.to_thread

from .names import display_name, key_for

__all__ = [
    "excluded_by",
    "IMAGE_EXTENSIONS",
    "SERVICE_EXTENSIONS",
    "STATE_FOLDER",
    "SKIPPED",
    "SkipKind",
    "ScanEntry",
    "ScanProblem",
    "ScanStats",
    "scan_tree",
    "aiter_scan",
    "count_files",
    "count_candidates",
    "count_candidates_within",
]

#: Lower-case suffixes scanned by default: what the service takes, plus formats prepare converts.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff"}
)
#: What Custom Vision itself takes (named in the reason for an unsupported format).
SERVICE_EXTENSIONS = "jpg, png, bmp, gif"
#: Image formats people have that neither the service nor cvbulk's converter takes: named as such.
_OTHER_IMAGE_FORMATS = frozenset(
    {".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".svg", ".psd", ".ico", ".tga", ".raw", ".dng",
     ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".exr", ".hdr", ".pcx", ".ppm", ".pgm", ".pbm"}
)
#: cvbulk's own state folder (journal, reports): never scanned, never reported (counted in ScanStats).
STATE_FOLDER = ".cvbulk"
#: The status of every :class:`ScanProblem` (the journal's and report's word for "not taken").
SKIPPED = "skipped"

# Looked up at call time so a test can make a folder unreadable even when running as root
# (where chmod 000 blocks nothing).
_scandir = os.scandir


class SkipKind:
    """Why a candidate was not taken (``ScanProblem.kind``), for callers that count or filter by kind."""

    HIDDEN = "hidden"                # a hidden file (name starts with "."), or a hidden folder (one entry)
    SPECIAL = "special"              # FIFO, socket, device
    UNSUPPORTED = "unsupported"      # an extension cvbulk does not take (.heic, .txt, no extension)
    NOT_SELECTED = "not-selected"    # an image extension left out by the caller's ``extensions``
    BROKEN_LINK = "broken-symlink"
    SYMLINK_LOOP = "symlink-loop"
    UNREADABLE = "unreadable"        # permission denied or another OS error
    VANISHED = "vanished"            # listed, then gone before it could be looked at
    ROOT = "root"                    # the root itself is missing, unreadable or not a folder (relpath ".")
    ERROR = "error"                  # anything else (the default for a ScanProblem made elsewhere)


_BY_RULE = frozenset({SkipKind.HIDDEN, SkipKind.SPECIAL, SkipKind.UNSUPPORTED, SkipKind.NOT_SELECTED})


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """A file found by the scan.

    ``relpath``: posix-style, relative to the root, as a lossless key (:func:`names.key_for`); ``path``:
    the real path to open. ``note``: a one-line remark on a file taken as is (its name ends in a space).
    """

    path: Path
    relpath: str
    size: int
    mtime_ns: int
    note: str | None = None

    @property
    def display(self) -> str:
        """``relpath`` as shown to a person (see :func:`names.display_name`)."""
        return display_name(self.relpath)


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """A candidate the scan did not take: its outcome is :data:`SKIPPED`, ``reason`` one line for a person."""

    relpath: str
    reason: str
    kind: str = SkipKind.ERROR

    @property
    def status(self) -> str:
        return SKIPPED

    @property
    def needs_attention(self) -> bool:
        """True for a candidate that could have been an image but could not be read (an unreadable
        folder, a broken link, a loop, a vanished entry, a bad root): a caller may count it as a failure.
        False for one left out by rule (hidden, unsupported format, special file, not selected)."""
        return self.kind not in _BY_RULE

    @property
    def display(self) -> str:
        return display_name(self.relpath)


@dataclass(slots=True)
class ScanStats:
    """Counters a caller may pass to :func:`scan_tree`; ``finished`` turns True when the walk is over.

    ``total`` (every value yielded: each ends in one recorded outcome) is final once ``finished`` is True:
    a progress bar can show "unknown" until then.
    """

    files: int = 0             # ScanEntry values yielded
    directories: int = 0       # folders read (the root included)
    problems: int = 0          # ScanProblem values yielded (all kinds)
    hidden: int = 0            # hidden files and folders skipped
    other_extensions: int = 0  # files skipped because of their extension
    special: int = 0           # sockets, fifos, devices skipped
    state_folders: int = 0     # cvbulk's own .cvbulk folders left out (not reported)
    finished: bool = False

    @property
    def total(self) -> int:
        return self.files + self.problems


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


def _reason(exc: OSError, what: str) -> tuple[str, str]:
    """(kind, one-line reason) for an OS error on ``what``."""
    if isinstance(exc, FileNotFoundError):
        return SkipKind.VANISHED, f"{what} vanished during the scan"
    if isinstance(exc, PermissionError):
        return SkipKind.UNREADABLE, f"{what}: permission denied, skipped"
    detail = exc.strerror or exc.__class__.__name__
    return SkipKind.UNREADABLE, f"{what}: {detail.lower()}, skipped"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _type_name(mode: int) -> str:
    if stat_mod.S_ISFIFO(mode):
        return "FIFO"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    if stat_mod.S_ISCHR(mode):
        return "character device"
    if stat_mod.S_ISBLK(mode):
        return "block device"
    return "special file"


def _extension(name: str) -> str:
    # A name ending in spaces or dots ("photo.jpg ") is judged by the extension before them; the file is
    # taken with a note (see _trailing_note).
    return os.path.splitext(name.rstrip(" ."))[1].lower()


def _unsupported_reason(ext: str, exts: frozenset[str]) -> tuple[str, str]:
    if ext in IMAGE_EXTENSIONS:
        return SkipKind.NOT_SELECTED, f"extension {ext} not among the selected ones, skipped"
    if ext in _OTHER_IMAGE_FORMATS:
        return SkipKind.UNSUPPORTED, (
            f"unsupported format {ext} (Custom Vision takes {SERVICE_EXTENSIONS}; convert it first)"
        )
    what = f"({key_for(ext)})" if ext else "(no extension)"
    return SkipKind.UNSUPPORTED, f"not an image file {what}, skipped"


def _trailing_note(name: str) -> str | None:
    # Decision: a name ending in a space or a dot is a valid file on Linux and macOS, and Custom Vision
    # never sees file names (images are sent as bytes), so the file is TAKEN, not skipped: skipping it
    # would lose an image the user asked for. It is flagged because Windows (and tools that trim names,
    # such as spreadsheets reading a manifest) cannot hold or match it; its key keeps the name exactly.
    if name != name.rstrip(" ."):
        return "name ends with a space or a dot: taken as is (Windows and tools that trim names cannot hold it)"
    return None


# In counting mode a regular file is not stat-ed: this stands in for its ScanEntry.
_COUNTED = ScanProblem("", "", "counted")


def _read_dir(
    dirpath: str,
    rel: str,
    exts: frozenset[str] | None,
    include_hidden: bool,
    report_skipped: bool,
    stats: ScanStats,
    light: bool,
) -> tuple[list[ScanEntry | ScanProblem], list[tuple[str, str, os.stat_result | None]], ScanProblem | None]:
    """Read one folder: its files (as entries/problems, sorted) and its sub-folders (name, key; sorted)."""
    try:
        with _scandir(dirpath) as it:
            raw = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        kind, reason = _reason(exc, f"folder {rel or '.'}")
        return [], [], ScanProblem(rel or ".", reason, kind)
    stats.directories += 1
    files: list[ScanEntry | ScanProblem] = []
    subdirs: list[tuple[str, str, os.stat_result | None]] = []

    def skip(relpath: str, reason: str, kind: str) -> None:
        if report_skipped:
            files.append(ScanProblem(relpath, reason, kind))

    for entry in raw:
        name = entry.name
        relpath = _join(rel, key_for(name))
        try:
            is_dir = entry.is_dir()  # from the directory listing itself: no system call unless a symlink
        except OSError:
            is_dir = False
        if is_dir and name == STATE_FOLDER:
            # cvbulk's own journal and reports, not a candidate of the user's: never scanned (even with
            # include_hidden) and not reported, or every rerun would say "1 skipped". Counted in stats.
            stats.state_folders += 1
            continue
        if not include_hidden and _is_hidden(entry):
            stats.hidden += 1
            if is_dir:  # one entry for the folder, never one per file inside
                skip(relpath, "hidden folder, not scanned (use --include-hidden)", SkipKind.HIDDEN)
            else:
                skip(relpath, "hidden file, skipped (use --include-hidden)", SkipKind.HIDDEN)
            continue
        if not is_dir:
            try:  # d_type from the listing: a FIFO/socket/device is known without a stat
                special = not entry.is_symlink() and not entry.is_file(follow_symlinks=False)
            except OSError:
                special = False
            if special:
                stats.special += 1
                try:
                    kind_name = _type_name(entry.stat(follow_symlinks=False).st_mode)
                except OSError:
                    kind_name = "special file"
                skip(relpath, f"not a regular file ({kind_name}), skipped", SkipKind.SPECIAL)
                continue
            ext = _extension(name)
            if exts is not None and ext not in exts:
                stats.other_extensions += 1  # decided by name alone: never stat a file we will not use
                skip(relpath, *reversed(_unsupported_reason(ext, exts)))
                continue
            if light and not entry.is_symlink():
                files.append(_COUNTED)  # counting: a regular file by its d_type, no stat needed
                continue
        try:
            st = entry.stat()  # follows symlinks: a link to a file is a file
        except FileNotFoundError:
            if entry.is_symlink():
                files.append(ScanProblem(
                    relpath, "broken symlink (its target does not exist), skipped", SkipKind.BROKEN_LINK
                ))
            else:
                files.append(ScanProblem(relpath, "vanished during the scan", SkipKind.VANISHED))
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink that points at itself (or a cycle of links)
                files.append(ScanProblem(relpath, "symlink loop, skipped", SkipKind.SYMLINK_LOOP))
            else:
                files.append(ScanProblem(relpath, *reversed(_reason(exc, "file"))))
            continue
        if stat_mod.S_ISDIR(st.st_mode):
            subdirs.append((name, relpath, st))  # kept for the loop check when the folder is entered
        elif stat_mod.S_ISREG(st.st_mode):
            if light:
                files.append(_COUNTED)
                continue
            found = ScanEntry(Path(entry.path), relpath, st.st_size, st.st_mtime_ns)
            note = _trailing_note(name)
            files.append(found if note is None else replace(found, note=note))
        else:  # a symlink to a FIFO or a device
            stats.special += 1
            skip(relpath, f"not a regular file ({_type_name(st.st_mode)}), skipped", SkipKind.SPECIAL)
    return files, subdirs, None


def _walk(
    root: str | os.PathLike[str],
    extensions: Iterable[str] | None,
    include_hidden: bool,
    report_skipped: bool,
    stats: ScanStats,
    light: bool,
) -> Generator[ScanEntry | ScanProblem, None, None]:
    exts = _normalise_extensions(extensions)
    root_path = os.fspath(root)
    shown_root = key_for(root_path)
    try:
        root_st = os.stat(root_path)
    except FileNotFoundError:
        stats.problems += 1
        yield ScanProblem(".", f"root {shown_root} does not exist", SkipKind.ROOT)
        return
    except OSError as exc:
        stats.problems += 1
        yield ScanProblem(".", _reason(exc, f"root {shown_root}")[1], SkipKind.ROOT)
        return
    if not stat_mod.S_ISDIR(root_st.st_mode):
        stats.problems += 1
        yield ScanProblem(".", f"root {shown_root} is not a folder", SkipKind.ROOT)
        return

    # Each frame: (dirpath, key relpath, (dev, ino) of every folder from the root down, pending sub-folders).
    Frame = tuple[str, str, frozenset[tuple[int, int]], Iterator[tuple[str, str, "os.stat_result | None"]]]
    stack: list[Frame] = []

    def enter(dirpath: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[ScanEntry | ScanProblem]:
        files, subdirs, problem = _read_dir(dirpath, rel, exts, include_hidden, report_skipped, stats, light)
        if problem is not None:
            stats.problems += 1
            yield problem
            return
        for item in files:
            if item is _COUNTED or not isinstance(item, ScanProblem):
                stats.files += 1
            else:
                stats.problems += 1
            yield item
        stack.append((dirpath, rel, ancestors, iter(subdirs)))

    yield from enter(root_path, "", frozenset({(root_st.st_dev, root_st.st_ino)}))
    while stack:
        dirpath, _rel, ancestors, pending = stack[-1]
        nxt = next(pending, None)
        if nxt is None:
            stack.pop()
            continue
        name, sub_rel, link_st = nxt
        sub_path = os.path.join(dirpath, name)
        try:
            st = link_st if link_st is not None else os.stat(sub_path)
        except OSError as exc:
            stats.problems += 1
            kind, reason = _reason(exc, f"folder {sub_rel}")
            yield ScanProblem(sub_rel, reason, kind)
            continue
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            stats.problems += 1
            yield ScanProblem(sub_rel, "symlink loop (leads back to a folder above it), skipped", SkipKind.SYMLINK_LOOP)
            continue
        yield from enter(sub_path, sub_rel, ancestors | {key})
    stats.finished = True


def scan_tree(
    root: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
    stats: ScanStats | None = None,
    report_skipped: bool = True,
) -> Generator[ScanEntry | ScanProblem, None, None]:
    """Walk ``root`` lazily: a :class:`ScanEntry` per file to work on, a :class:`ScanProblem` per candidate
    not taken (each with ``status == "skipped"``, a ``kind`` and a one-line reason).

    Symlinks to files are followed; symlinked folders are followed unless they lead back to a folder on
    the current path (a loop, reported). ``extensions=None`` takes every regular file.
    ``report_skipped=False`` gives the old, quiet behaviour: hidden entries, other extensions and special
    files are only counted in ``stats``; broken links, loops and unreadable folders are still yielded.
    """
    stats = stats if stats is not None else ScanStats()
    return _walk(root, extensions, include_hidden, report_skipped, stats, light=False)


async def aiter_scan(
    root: str | os.PathLike[str], *, chunk: int = 256, **kw: object
) -> AsyncIterator[ScanEntry | ScanProblem]:
    """:func:`scan_tree` driven in a worker thread, ``chunk`` items per hop, so the event loop never blocks on disk.

    Pass ``stats=ScanStats()`` to learn the total: ``stats.finished`` turns True (and ``stats.total`` is
    final) once the walk is over, so a progress line can say "unknown" until then.
    """
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


def _count(
    root: str | os.PathLike[str],
    extensions: Iterable[str] | None,
    include_hidden: bool,
    report_skipped: bool,
    past_deadline: Callable[[], bool] | None = None,
) -> ScanStats | None:
    """Walk in counting mode; None when ``past_deadline()`` turns True (checked every 1,024 values)."""
    stats = ScanStats()
    for n, _ in enumerate(_walk(root, extensions, include_hidden, report_skipped, stats, light=True)):
        if past_deadline is not None and n % 1024 == 0 and past_deadline():
            return None
    return stats


def count_files(
    root: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
) -> int:
    """How many files :func:`scan_tree` would take (ScanEntry values only; no stat of a plain file)."""
    stats = _count(root, extensions, include_hidden, False)
    assert stats is not None  # no deadline
    return stats.files


def count_candidates(
    root: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
    report_skipped: bool = True,
) -> int:
    """How many values :func:`scan_tree` would yield with the same arguments: the true total of a job
    whose every candidate ends in one outcome, known before the first file is sent (as rclone counts).

    Fast: one ``scandir`` per folder and no ``stat`` of a plain file (the listing's file type is enough);
    only folders, symlinks and special files are looked at. Blocking: run it with
    ``anyio.to_thread.run_sync``. The tree may change between the count and the scan: treat the count as
    the total to show, and the scan's own ``ScanStats.total`` (final once ``finished``) as the truth.
    """
    stats = _count(root, extensions, include_hidden, report_skipped)
    assert stats is not None  # no deadline
    return stats.total


def count_candidates_within(
    root: str | os.PathLike[str],
    seconds: float,
    *,
    extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
    report_skipped: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> int | None:
    """:func:`count_candidates`, or None when counting takes longer than ``seconds`` (a very large or slow
    tree): the caller then shows the total as unknown until the scan ends (``ScanStats.finished``).
    """
    deadline = clock() + seconds
    stats = _count(root, extensions, include_hidden, report_skipped, lambda: clock() > deadline)
    return None if stats is None else stats.total


def excluded_by(relpath: str, patterns: Sequence[str]) -> str | None:
    """The first ``--exclude`` pattern that matches ``relpath`` (the path, any leading folder of it, or
    the file name; a trailing ``/`` is ignored), or None. Upload and check share it."""
    if not patterns:
        return None
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + [parts[-1]]
    for p in patterns:
        if any(fnmatchcase(c, p.rstrip("/")) for c in candidates):
            return p
    return None
