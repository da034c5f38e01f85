"""What a blob source and a blob sink share: the clients of one container, closing them, paged listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from ._azure import make_service_client, storage_error
from ._location import Location
from ._names import join_under
from ._settings import StorageSettings
from ._types import StorageEntry, StorageStats, StorageTimeouts

__all__ = ["BlobContainerEndpoint", "blob_entry"]


def _quoted(etag: str) -> str:
    # a listing gives 0x8D...; a blob's headers give "0x8D...": one spelling, the HTTP one, for journal keys
    return etag if etag.startswith('"') else f'"{etag}"'


def blob_entry(props: Any, prefix: str) -> StorageEntry:
    """A :class:`StorageEntry` from the SDK's ``BlobProperties``, named relative to ``prefix``."""
    content = getattr(props, "content_settings", None)
    return StorageEntry(
        name=props.name[len(prefix) :],
        size=int(props.size or 0),
        etag=_quoted(str(props.etag)),
        last_modified=props.last_modified,
        content_type=getattr(content, "content_type", None),
    )


class BlobContainerEndpoint:
    """One container under a prefix, with its own SDK clients (closed by ``aclose`` / ``async with``)."""

    def __init__(
        self, location: Location, settings: StorageSettings, *, timeouts: StorageTimeouts | None = None
    ) -> None:
        # the location as shown in messages: the account's URL filled in, never a SAS token
        self.location = replace(
            location, account_name=settings.account_name, account_url=settings.account_url, sas_token=None
        )
        self.settings = settings
        self.timeouts = timeouts or StorageTimeouts()
        self.stats = StorageStats()
        self._service, self._credential = make_service_client(settings, self.timeouts)
        self._container = self._service.get_container_client(location.container)

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._service.close()
        close = getattr(self._credential, "close", None)
        if close is not None:
            await close()

    async def pages(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[list[StorageEntry]]:
        """The blobs under the prefix (and ``under``), a page of at most ``page_size`` at a time, by name."""
        prefix = self.location.prefix
        start = prefix + join_under(under)
        pager = self._container.list_blobs(name_starts_with=start or None, results_per_page=page_size).by_page()
        while True:
            try:
                page = await pager.__anext__()  # no request once the last page had no continuation
                self.stats.requests += 1
                entries = [blob_entry(blob, prefix) async for blob in page if not blob.name.endswith("/")]
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise storage_error(exc, where=self.location, settings=self.settings) from None
            self.stats.pages += 1
            self.stats.listed += len(entries)
            del page  # the SDK's objects of this page go before the next one comes
            if entries:
                yield entries
            del entries
