"""One atomic file write for the pipeline: a temporary file in the same folder, then ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(
    path: Path, *, suffix: str = ".part", fsync: bool = False, keep_mode: bool = False
) -> Iterator[BinaryIO]:
    """A file to write ``path``'s new content into, streamed; ``path`` is replaced when the block ends, and left as
    it was when the block raises (the temporary file goes), so a kill never leaves half a file.

    ``fsync`` flushes to disk before the rename (a report must survive a power cut); ``keep_mode`` keeps the
    permissions of the file replaced, else 0644 (mkstemp makes the temporary file 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        mode = 0o644
        if keep_mode:
            try:
                mode = path.stat().st_mode & 0o777
            except FileNotFoundError:
                pass
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(
    path: Path, data: bytes, *, suffix: str = ".part", fsync: bool = False, keep_mode: bool = False
) -> None:
    """Write ``data`` at ``path`` so that a kill never leaves half a file: the old one or the new one."""
    with atomic_writer(path, suffix=suffix, fsync=fsync, keep_mode=keep_mode) as fh:
        fh.write(data)
