"""What a blob source and a blob sink share: the clients of one container, closing them, paged listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from ._azure import make_service_client, storage_error
from ._listing import list_pages, quoted_etag
from ._location import Location
from ._names import join_under
from ._settings import StorageSettings
from ._types import StorageEntry, StorageStats, StorageTimeouts
from .errors import AccessDeniedError, ContainerNotFoundError

__all__ = ["BlobContainerEndpoint", "blob_entry"]


def blob_entry(props: Any, prefix: str) -> StorageEntry:
    """A :class:`StorageEntry` from the SDK's ``BlobProperties``, named relative to ``prefix``."""
    content = getattr(props, "content_settings", None)
    return StorageEntry(
        name=props.name[len(prefix) :],
        size=int(props.size or 0),
        etag=quoted_etag(str(props.etag)),
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
        # a blob's URL without building its BlobClient (~0.15 ms each): the container's URL, no SAS query
        self._blob_base = self._container.url.split("?", 1)[0]

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
        async for entries in self._pages(self.location.prefix + join_under(under), page_size):
            self.stats.pages += 1
            self.stats.listed += len(entries)
            if entries:
                yield entries
            del entries

    async def count(self, *, page_size: int = 5000) -> int:
        """How many blobs are under the prefix: pages of ``page_size`` (5,000 is the most List Blobs gives) read
        and counted, no name kept. Its requests count in ``stats.requests``; ``listed`` and ``pages`` stay the
        run's own listing."""
        total = 0
        async for entries in self._pages(self.location.prefix, page_size):
            total += len(entries)
        return total

    async def _pages(self, start: str, page_size: int) -> AsyncIterator[list[StorageEntry]]:
        """The listing's pages from ``start``, each request counted, its failure a storage error."""
        pager = list_pages(self._container, prefix=self.location.prefix, start=start, page_size=page_size).__aiter__()
        while True:
            try:
                entries = await pager.__anext__()
                self.stats.requests += 1
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise storage_error(exc, where=self.location, settings=self.settings) from None
            yield entries

    def needs(self, error: Exception, permissions: str) -> Exception:
        """``error`` (access denied under a SAS token) saying which permissions the job needs."""
        if not isinstance(error, AccessDeniedError) or self.settings.auth != "sas" or "expired" in str(error):
            return error
        return AccessDeniedError(f"{error}; a SAS token here needs sp={permissions}", status=error.status, code=error.code)

    async def name_containers(self, error: Exception) -> Exception:
        """``error`` (a container not found) with the account's first containers named, when the credentials
        may list them (an account key or identity can; a container SAS cannot: then ``error`` as it is)."""
        if not isinstance(error, ContainerNotFoundError):
            return error
        try:
            pages = self._service.list_containers(results_per_page=6).by_page()
            self.stats.requests += 1
            names = [c.name async for c in await pages.__anext__()]
        except Exception:
            return error
        if not names:
            return ContainerNotFoundError(f"{error}: the account holds no container", status=404)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return ContainerNotFoundError(f"{error}; containers there: {shown}", status=404)

    def blob_url(self, name: str) -> str:
        """The URL of the blob ``name`` (the full name, prefix included), as the SDK spells it, no query."""
        return f"{self._blob_base}/{quote(name, safe='~/')}"
