"""An export target in a blob container: whole-blob writes with overwrite, text files, a listing for resume."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from ._azure import storage_error
from ._blob_base import BlobContainerEndpoint
from ._location import Location
from ._names import check_name
from ._settings import StorageSettings
from ._types import StorageTimeouts
from .errors import StorageError

__all__ = ["BlobSink"]

TEXT_TYPE = "text/plain; charset=utf-8"


class BlobSink(BlobContainerEndpoint):
    """Writes under ``location``'s prefix. A blob appears whole or not at all: one Put Blob for small data,
    staged blocks and one Put Block List (the atomic commit) for large data; either replaces an old blob."""

    def __init__(
        self,
        location: Location,
        settings: StorageSettings,
        *,
        timeouts: StorageTimeouts | None = None,
        create_container: bool = False,
    ) -> None:
        super().__init__(location, settings, timeouts=timeouts)
        self.create_container = create_container

    async def check(self) -> None:
        """The container exists (or is created when ``create_container``) and can be listed."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        try:
            if self.create_container:
                try:
                    self.stats.requests += 1
                    await self._container.create_container()
                except ResourceExistsError:
                    pass
                except HttpResponseError as exc:
                    # A container SAS (or a role without create) may write blobs but never create a container:
                    # the listing below says whether the container is there.
                    if getattr(exc, "status_code", None) not in (401, 403):
                        raise
            self.stats.requests += 1
            pager = self._container.list_blobs(name_starts_with=self.location.prefix or None, results_per_page=1)
            async for _ in pager.by_page():
                break
        except Exception as exc:
            error = storage_error(exc, where=self.location, settings=self.settings)
            raise self.needs(await self.name_containers(error), "wl (write, list)") from None

    async def write_bytes(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        await self._upload(name, data, len(data), content_type)

    async def write_text(self, name: str, text: str, *, content_type: str | None = None) -> None:
        data = text.encode("utf-8")
        await self._upload(name, data, len(data), content_type or TEXT_TYPE)

    async def write_stream(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> None:
        counted = _Counted(chunks)
        try:
            await self._upload(name, counted, None, content_type)
        except StorageError:
            if counted.error is not None:
                raise counted.error from None  # the data's own failure, not the storage's
            raise
        self.stats.bytes_written += counted.total

    async def _upload(self, name: str, data: object, length: int | None, content_type: str | None) -> None:
        from azure.storage.blob import ContentSettings

        blob = self._container.get_blob_client(self.location.prefix + check_name(name))
        settings = ContentSettings(content_type=content_type) if content_type else None
        try:
            self.stats.requests += 1
            await blob.upload_blob(data, length=length, overwrite=True, content_settings=settings)
        except StorageError:
            raise
        except Exception as exc:
            raise storage_error(exc, where=self.location, item=name, settings=self.settings) from None
        if length is not None:
            self.stats.bytes_written += length

    async def exists(self, name: str) -> bool:
        blob = self._container.get_blob_client(self.location.prefix + check_name(name))
        try:
            self.stats.requests += 1
            return bool(await blob.exists())
        except Exception as exc:
            raise storage_error(exc, where=self.location, item=name, settings=self.settings) from None


class _Counted:
    """An async iterable that counts the bytes passing through (for the sink's counters) and keeps the error
    the data raised, which the SDK would otherwise wrap as a storage failure."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks
        self.total = 0
        self.error: Exception | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                self.total += len(chunk)
                yield chunk
        except Exception as exc:
            self.error = exc
            raise
