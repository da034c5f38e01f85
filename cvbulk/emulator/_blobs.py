"""Content-addressed store for image bytes, named by SHA-256.

New blobs are appended to one pack file (``blobs/pack``): a record is the digest (64 ASCII hex), the length
(8 bytes, little-endian) and the bytes. The index (digest -> offset, length) lives in memory and is rebuilt
from the pack's record heads at start. One file for every image, rather than a file per image: no inode to
allocate, no temporary file to rename, no folder to stat per image, which was most of an upload's cost in
the emulator. Blobs that earlier versions stored one file each (``blobs/ab/abcdef...``) are still read.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from pathlib import Path

__all__ = ["BlobStore"]

_HEAD = struct.Struct("<64sQ")  # digest (hex, ASCII), length
_BINARY = getattr(os, "O_BINARY", 0)


class BlobStore:
    """Synchronous; call from worker threads (thread-safe within one process). A crash mid-append leaves
    a torn last record, cut off at the next start, so a blob is either whole or absent; equal content
    is stored once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, int]] = {}
        self._fd: int | None = os.open(self.root / "pack", os.O_RDWR | os.O_CREAT | _BINARY, 0o666)
        self._end = self._load()

    def _load(self) -> int:
        """Index the pack's complete records; cut off a torn last one (a crash mid-append)."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        pos = 0
        while pos + _HEAD.size <= size:
            digest, length = _HEAD.unpack(_pread(self._fd, _HEAD.size, pos))
            start = pos + _HEAD.size
            if start + length > size:
                break
            self._index[digest.decode("ascii")] = (start, length)
            pos = start + length
        if pos != size:
            os.ftruncate(self._fd, pos)
        return pos

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:  # an emulator dropped without a stop still lets go of its file
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)

    def path(self, sha256: str) -> Path:
        """Where an earlier version stored a blob as its own file."""
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes | memoryview) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.put_known(digest, data)
        return digest

    def put_known(self, digest: str, data: bytes | memoryview) -> None:
        if digest in self._index:
            return
        with self._lock:
            if digest in self._index:
                return
            if self._fd is None:
                raise OSError("the blob store is closed")
            pos = self._end
            _write_all(self._fd, _HEAD.pack(digest.encode("ascii"), len(data)), pos)
            _write_all(self._fd, data, pos + _HEAD.size)
            self._end = pos + _HEAD.size + len(data)
            self._index[digest] = (pos + _HEAD.size, len(data))

    def get(self, digest: str) -> bytes:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise FileNotFoundError(digest)
        found = self._index.get(digest)
        if found is None:
            return self.path(digest).read_bytes()
        start, length = found
        fd = self._fd
        if fd is None:
            raise FileNotFoundError(digest)
        data = _pread(fd, length, start)
        if len(data) != length:  # the pack cannot shrink under us: a short read only loops
            parts = [data]
            got = len(data)
            while got < length:
                more = _pread(fd, length - got, start + got)
                if not more:
                    raise FileNotFoundError(digest)
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    def exists(self, digest: str) -> bool:
        return digest in self._index or self.path(digest).exists()


def _write_all(fd: int, data: bytes | memoryview, pos: int) -> None:
    view = memoryview(data)
    while view:
        written = _pwrite(fd, view, pos)
        view = view[written:]
        pos += written


_POSITIONED = hasattr(os, "pread")  # Windows has none: seek, then read or write, under one lock
_SEEK = threading.Lock()


def _pread(fd: int, n: int, pos: int) -> bytes:
    if _POSITIONED:
        return os.pread(fd, n, pos)
    with _SEEK:  # pragma: no cover - Windows
        os.lseek(fd, pos, os.SEEK_SET)
        return os.read(fd, n)


def _pwrite(fd: int, data: memoryview, pos: int) -> int:
    if _POSITIONED:
        return os.pwrite(fd, data, pos)
    with _SEEK:  # pragma: no cover - Windows
        os.lseek(fd, pos, os.SEEK_SET)
        return os.write(fd, data)
