"""Image bodies that are read when their request is written, not held in memory from the start.

An :class:`ImageBody` knows its size up front (so a request's length is known and an oversized image is
refused before a byte is read) and hands out its bytes in chunks, opened anew for every attempt: a retry
re-reads, and no file stays open between requests, however many images wait in a queue.

Storage-agnostic: a local file (:class:`FileBody`), bytes in memory (:class:`BytesBody`), and any other
source (a blob in cloud storage) that implements the same three members.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio.to_thread

__all__ = ["ImageBody", "FileBody", "BytesBody", "BodyChanged", "as_body", "read_body", "CHUNK_SIZE"]

#: Bytes read per worker-thread hop: most images are one chunk; a large one stays this far from memory.
CHUNK_SIZE = 1024 * 1024


class BodyChanged(OSError):
    """The source no longer holds ``size`` bytes (the file was changed or truncated after it was sized)."""


@runtime_checkable
class ImageBody(Protocol):
    """The bytes of one image, read on demand.

    ``size``: exactly how many bytes ``chunks()`` yields. ``name``: a file name for the service (ASCII is
    safest). ``chunks()``: a fresh async iterator over the bytes, from the start, on every call.
    """

    @property
    def size(self) -> int:
        """How many bytes ``chunks()`` yields (the request's Content-Length is built from it)."""
        ...

    @property
    def name(self) -> str:
        """The file name sent to the service."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """A new iterator over the bytes from the start; called again for every attempt."""
        ...


@dataclass(frozen=True)
class BytesBody:
    """Bytes already in memory (a fixed image, a download, a test)."""

    data: bytes
    name: str = "image"

    @property
    def size(self) -> int:
        """``len(data)``."""
        return len(self.data)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes in slices of at most 1 MiB."""
        if len(self.data) <= CHUNK_SIZE:
            if self.data:
                yield self.data
            return
        view = memoryview(self.data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])


@dataclass(frozen=True)
class FileBody:
    """A file on disk, ``size`` bytes long (from the scan's stat). Each chunk is one worker-thread hop
    that opens, reads and closes: no descriptor is held while a request waits for the network."""

    path: Path
    size: int
    name: str = ""
    chunk_size: int = field(default=CHUNK_SIZE, repr=False)

    def __post_init__(self) -> None:
        if not self.name:  # the file's name (os.path: a Path per image costs more than the rest of this)
            object.__setattr__(self, "name", os.path.basename(os.fspath(self.path)))

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, read in a worker thread chunk by chunk; ``BodyChanged`` if it got shorter."""
        offset = 0
        while offset < self.size:
            want = min(self.chunk_size, self.size - offset)
            data = await anyio.to_thread.run_sync(_read_at, self.path, offset, want)
            if len(data) != want:
                raise BodyChanged(f"{self.path} changed while it was sent ({self.size} bytes expected)")
            offset += want
            yield data


def read_run(lead: bytes, heads: Sequence[bytes], bodies: Sequence[FileBody], sep: bytes = b"\r\n") -> bytearray:
    """``lead``, then each head followed by its file's bytes, files ``sep``-separated, in one buffer: the
    files are read straight into it (no copy per image). ``BodyChanged`` if a file no longer holds its size."""
    size = len(lead) + sum(map(len, heads)) + sum(b.size for b in bodies) + len(sep) * (len(bodies) - 1)
    buf = bytearray(size)
    with memoryview(buf) as view:
        pos = len(lead)
        view[:pos] = lead
        for i, (head, body) in enumerate(zip(heads, bodies)):
            if i:
                view[pos : pos + len(sep)] = sep
                pos += len(sep)
            view[pos : pos + len(head)] = head
            pos += len(head)
            _read_into(body, view[pos : pos + body.size])
            pos += body.size
    return buf


def _read_into(body: FileBody, target: memoryview) -> None:
    with open(body.path, "rb", buffering=0) as f:  # unbuffered: the bytes land in ``target`` directly
        got = 0
        while got < len(target):
            n = f.readinto(target[got:])
            if not n:
                raise BodyChanged(f"{body.path} changed while it was sent ({body.size} bytes expected)")
            got += n


def _read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return os.pread(fd, size, offset) if hasattr(os, "pread") else _seek_read(fd, offset, size)
    finally:
        os.close(fd)


def _seek_read(fd: int, offset: int, size: int) -> bytes:  # pragma: no cover - Windows
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def as_body(image: bytes | bytearray | memoryview | ImageBody, name: str = "image") -> ImageBody:
    """``image`` as a body: bytes are wrapped, a body is returned as it is."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return BytesBody(bytes(image), name)
    return image


async def read_body(body: ImageBody) -> bytes:
    """The whole body in memory (for small bodies and tests; the senders stream instead)."""
    if isinstance(body, BytesBody):
        return body.data
    parts = [chunk async for chunk in body.chunks()]
    return b"".join(parts)
