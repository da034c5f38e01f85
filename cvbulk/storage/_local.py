"""A local folder behind the same interfaces as a container: the folder is the container plus prefix.

The ETag of a file is its modification time and size (``<mtime_ns hex>-<size hex>``): a file rewritten between
runs gets a new one, like a replaced blob. Hidden names (starting with ``.``) are not listed: they are
editor and OS litter, and the sink's temporary files.
"""

from __future__ import annotations

import mimetypes
import os
import stat as stat_mod
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

import anyio
import anyio.to_thread

from ._location import Location
from ._names import check_name, join_under
from ._types import HEADER_BYTES, EntryBody, ReadUrl, StorageEntry, StorageStats
from .errors import ItemChangedError, ItemMissingError, LocationError, PrefixNotFoundError, ReadUrlError

__all__ = ["LocalSource", "LocalSink", "LocalBody", "local_etag"]

_CHUNK = 256 * 1024


def local_etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def _entry(name: str, st: os.stat_result) -> StorageEntry:
    return StorageEntry(
        name=name,
        size=st.st_size,
        etag=local_etag(st),
        last_modified=datetime.fromtimestamp(st.st_mtime, timezone.utc),
        content_type=mimetypes.guess_type(name)[0],
    )


def _walk(root: Path, under: str) -> Iterator[StorageEntry]:
    """Files under ``root/under`` in name order (code points of the relative posix name), lazily: holds one
    folder's sorted names at a time per level. Symlinked folders are not followed (no loops)."""
    start = root / under if under else root
    if not start.is_dir():
        return
    # a stack of (relative folder, names still to visit in it); names sorted so that "a/b" < "a0" like blobs do
    stack: list[tuple[str, Iterator[str]]] = [(under, iter(_sorted_names(start)))]
    while stack:
        rel_dir, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        rel = rel_dir + name
        if rel.endswith("/"):
            sub = root / rel
            if not sub.is_symlink():
                stack.append((rel, iter(_sorted_names(sub))))
            continue
        try:
            st = os.stat(root / rel)
        except OSError:
            continue  # vanished or unreadable since the folder was read
        if stat_mod.S_ISREG(st.st_mode):
            yield _entry(rel, st)


def _sorted_names(folder: Path) -> list[str]:
    """The visible names of ``folder``, folders with a trailing ``/``, sorted as blob names would be."""
    names = []
    try:
        with os.scandir(folder) as it:
            for item in it:
                if item.name.startswith("."):
                    continue
                try:
                    is_dir = item.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                names.append(item.name + "/" if is_dir else item.name)
    except OSError:
        return []
    return sorted(names)


#: The body of one local file item (the one body class of every source).
LocalBody = EntryBody


_E = TypeVar("_E", bound="_LocalEndpoint")


class _LocalEndpoint:
    """What a local source and a local sink share: a folder, their counters, and nothing to close."""

    def __init__(self, location: Location) -> None:
        if location.path is None:
            raise LocationError(f"{location} is not a local folder")
        self.location = location
        self.root: Path = location.path
        self.stats = StorageStats()

    async def __aenter__(self: _E) -> _E:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    async def _walk_pages(self, under: str, page_size: int) -> AsyncIterator[list[StorageEntry]]:
        """The files under the folder (and ``under``), by name, ``page_size`` at a time, walked in a thread."""
        walk = _walk(self.root, join_under(under))
        while True:
            page = await anyio.to_thread.run_sync(lambda: list(islice(walk, page_size)))
            if not page:
                return
            yield page


class LocalSource(_LocalEndpoint):
    """The files under a local folder."""

    supports_urls = False

    async def check(self) -> None:
        if not await anyio.to_thread.run_sync(self.root.is_dir):
            raise PrefixNotFoundError(f"no such folder: {self.root}")

    async def pages(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[list[StorageEntry]]:
        async for page in self._walk_pages(under, page_size):
            self.stats.pages += 1
            self.stats.listed += len(page)
            yield page

    async def entries(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[StorageEntry]:
        async for page in self.pages(under=under, page_size=page_size):
            for entry in page:
                yield entry

    async def folders(self) -> list[str]:
        names = await anyio.to_thread.run_sync(_sorted_names, self.root)
        return [name.rstrip("/") for name in names if name.endswith("/")]

    async def stat(self, name: str) -> StorageEntry:
        path = self.root / check_name(name)
        try:
            st = await anyio.to_thread.run_sync(os.stat, path)
        except FileNotFoundError:
            raise ItemMissingError(f"{name!r} in {self.location} does not exist", where=self.location) from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise ItemMissingError(f"{name!r} in {self.location} is not a file", where=self.location)
        return _entry(name, st)

    def _open_unchanged(self, entry: StorageEntry) -> BinaryIO:
        try:
            handle = open(self.root / entry.name, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise ItemMissingError(f"{entry.name!r} in {self.location} is gone (deleted since it was listed)", where=self.location) from None
        if local_etag(os.fstat(handle.fileno())) != entry.etag:
            handle.close()
            raise ItemChangedError(f"{entry.name!r} in {self.location} changed since it was listed", where=self.location)
        return handle

    async def read_head(self, entry: StorageEntry, size: int = HEADER_BYTES) -> bytes:
        if size <= 0:
            raise ValueError("size must be positive")

        def read() -> bytes:
            with self._open_unchanged(entry) as handle:
                return handle.read(size)

        data = await anyio.to_thread.run_sync(read)
        self.stats.header_reads += 1
        self.stats.header_bytes += len(data)
        self.stats.bytes_read += len(data)
        return data

    async def stream(self, entry: StorageEntry) -> AsyncIterator[bytes]:
        handle = await anyio.to_thread.run_sync(self._open_unchanged, entry)
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, _CHUNK):
                self.stats.bytes_read += len(chunk)
                yield chunk
        finally:
            handle.close()

    async def read_all(self, entry: StorageEntry) -> bytes:
        return b"".join([chunk async for chunk in self.stream(entry)])

    def body(self, entry: StorageEntry) -> LocalBody:
        return LocalBody(self, entry)

    async def read_url(self, entry: StorageEntry, *, ttl: float = 3600.0) -> ReadUrl:
        raise ReadUrlError(f"{entry.name!r} is a local file: the service cannot fetch it by URL; send its bytes")


class LocalSink(_LocalEndpoint):
    """Writes under a local folder: a temporary file beside the target, then ``os.replace`` (atomic)."""

    def __init__(self, location: Location, *, create: bool = True) -> None:
        super().__init__(location)
        self.create = create

    async def check(self) -> None:
        def check() -> None:
            if self.create:
                self.root.mkdir(parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise PrefixNotFoundError(f"no such folder: {self.root}")

        await anyio.to_thread.run_sync(check)

    def _target(self, name: str) -> Path:
        return self.root / check_name(name)

    def _replace_with(self, target: Path, write: object) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)  # type: ignore[operator]
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    async def write_bytes(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        target = self._target(name)
        await anyio.to_thread.run_sync(self._replace_with, target, lambda handle: handle.write(data))
        self.stats.requests += 1
        self.stats.bytes_written += len(data)

    async def write_text(self, name: str, text: str, *, content_type: str | None = None) -> None:
        await self.write_bytes(name, text.encode("utf-8"))

    async def write_stream(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> None:
        target = self._target(name)

        def open_tmp() -> tuple[BinaryIO, str]:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            return os.fdopen(fd, "wb"), tmp

        handle, tmp = await anyio.to_thread.run_sync(open_tmp)
        total = 0
        try:
            try:
                async for chunk in chunks:
                    await anyio.to_thread.run_sync(handle.write, chunk)
                    total += len(chunk)
            finally:
                handle.close()
            await anyio.to_thread.run_sync(os.replace, tmp, target)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: Path(tmp).unlink(missing_ok=True))
            raise
        self.stats.requests += 1
        self.stats.bytes_written += total

    async def pages(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[list[StorageEntry]]:
        async for page in self._walk_pages(under, page_size):
            yield page

    async def exists(self, name: str) -> bool:
        return await anyio.to_thread.run_sync(self._target(name).is_file)
