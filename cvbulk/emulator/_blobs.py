"""Content-addressed file store for image bytes: ``blobs/ab/abcdef...`` named by SHA-256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["BlobStore"]


class BlobStore:
    """Synchronous; call from worker threads. Writes are atomic (temp file + rename), so a
    crash never leaves a torn blob under its final name, and equal content is stored once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.put_known(digest, data)
        return digest

    def put_known(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(f".{digest}.{os.getpid()}.{id(data)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)

    def get(self, digest: str) -> bytes:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise FileNotFoundError(digest)
        return self.path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()
