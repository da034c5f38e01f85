"""Content-addressed file store for image bytes: ``blobs/ab/abcdef...`` named by SHA-256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["BlobStore"]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


class BlobStore:
    """Synchronous; call from worker threads. Writes are atomic (temp file + rename), so a
    crash never leaves a torn blob under its final name, and equal content is stored once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = os.fspath(self.root)
        self._folders: set[str] = set()  # sub-folders known to exist (one mkdir each, not one per image)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes | memoryview) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.put_known(digest, data)
        return digest

    def put_known(self, digest: str, data: bytes | memoryview) -> None:
        # Plain os calls on strings: a Path per call cost more than the write for a small image.
        folder = os.path.join(self._root, digest[:2])
        target = os.path.join(folder, digest)
        if os.path.exists(target):
            return
        tmp = os.path.join(folder, f".{digest}.{os.getpid()}.{id(data)}.tmp")
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        try:
            fd = os.open(tmp, _CREATE, 0o666)
        except FileNotFoundError:  # the folder went away under us
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, target)

    def get(self, digest: str) -> bytes:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise FileNotFoundError(digest)
        return self.path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()
