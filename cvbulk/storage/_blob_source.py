"""Images in a blob container: lazy paged listing, virtual folders, ranged and streaming reads, read URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio

from .._http1 import proxied
from ._azure import storage_error
from ._blob_base import BlobContainerEndpoint, blob_entry
from ._location import Location
from ._names import check_name
from ._ranged import RangedReader
from ._sas import ReadUrlSigner, granted, too_wide
from ._settings import StorageSettings
from ._types import HEADER_BYTES, EntryBody, ReadUrl, StorageEntry, StorageTimeouts
from .errors import (
    ARCHIVED,
    AccessDeniedError,
    ItemArchivedError,
    ItemChangedError,
    ItemMissingError,
    PrefixNotFoundError,
    StorageError,
    StorageRequestError,
    StorageUnreachableError,
)

__all__ = ["BlobSource", "BlobBody"]

#: Answers worth another try: the service was busy or failed for a moment.
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
#: The first wait before another try (doubled each time).
_RETRY_WAIT = 0.5


#: The body of one blob item (the one body class of every source).
BlobBody = EntryBody


class BlobSource(BlobContainerEndpoint):
    """The blobs under ``location`` (a blob :class:`Location`). Use :func:`cvbulk.storage.open_source`, or
    ``async with BlobSource(location, settings): ...``."""

    supports_urls = True

    def __init__(
        self, location: Location, settings: StorageSettings, *, timeouts: StorageTimeouts | None = None
    ) -> None:
        super().__init__(location, settings, timeouts=timeouts)
        self._signer = ReadUrlSigner(settings, self._service, location.container)
        self._http: RangedReader | None = None  # for reads through read URLs, made at the first
        # The lean reader speaks to the account directly; behind a proxy (HTTPS_PROXY / HTTP_PROXY, which the
        # SDK honours) every read goes through the SDK instead.
        self._lean_reads = not proxied(self._container.url)
        # Set (to the error) when a read found the account not answering after its retries, cleared by the next
        # read that works: meanwhile reads are tried once, without retries, and a run stops (``down``: the
        # pipeline ends the run with its report rather than fail every image left, one by one).
        self._down_error: StorageUnreachableError | None = None
        self._watchers: set[anyio.CancelScope] = set()
        # Set when the URLs for the service would carry a SAS token of the user's that can write or delete:
        # the pipeline then sends bytes (a URL handed to the service is read-only, or not handed at all).
        permissions = granted(settings.sas_token or "") if settings.auth == "sas" else None
        wide = permissions is not None and bool(set(permissions) - set("rl"))
        self.urls_refused = too_wide(settings.origin, permissions or "") if wide else None

    @property
    def _down(self) -> bool:
        return self._down_error is not None

    @property
    def down(self) -> StorageUnreachableError | None:
        """The error of the read that found the account silent after its retries; None while it answers."""
        return self._down_error

    @down.setter
    def down(self, error: StorageUnreachableError | None) -> None:
        self._down_error = error
        if error is not None:
            for scope in list(self._watchers):
                scope.cancel()  # a request streaming a blob: it would only be tried again, blob after blob

    @contextmanager
    def cancelled_when_down(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope cancelled as soon as a read finds the account silent (at once if it is now): around a
        request whose body streams from here (``scope.cancelled_caught`` tells, after)."""
        with anyio.CancelScope() as scope:
            if self._down_error is not None:
                scope.cancel()
            self._watchers.add(scope)
            try:
                yield scope
            finally:
                self._watchers.discard(scope)

    def _blob_name(self, entry_name: str) -> str:
        return self.location.prefix + entry_name

    async def check(self) -> None:
        """The container exists, the credentials can list it, and something is under the prefix."""
        prefix = self.location.prefix
        try:
            pages = self._container.list_blobs(name_starts_with=prefix or None, results_per_page=1).by_page()
            self.stats.requests += 1
            first = [blob async for blob in await pages.__anext__()]
        except StopAsyncIteration:
            first = []
        except Exception as exc:
            error = storage_error(exc, where=self.location, settings=self.settings)
            raise self.needs(await self.name_containers(error), "rl (read, list)") from None
        if prefix and not first:
            raise PrefixNotFoundError(await self._nothing_under())
        self._check_token_reads()

    async def _nothing_under(self) -> str:
        """Why nothing is under the prefix, when one more listing can tell: the prefix names a blob (a file
        given where a folder goes), or it is the start of a folder's name (``Hem`` for ``Hemlock/``)."""
        said = f"nothing under {self.location}"
        stem = self.location.prefix.rstrip("/")
        try:
            pages = self._container.list_blobs(name_starts_with=stem, results_per_page=5).by_page()
            self.stats.requests += 1
            names = [blob.name async for blob in await pages.__anext__()]
        except Exception:  # the first answer stands (no such page, or the listing failed now)
            return said
        parent = stem.rpartition("/")[0]
        parent = parent + "/" if parent else ""
        if stem in names:
            return f"{said}: {stem!r} is a blob, not a folder (give its folder: the prefix {parent!r})"
        folders = [n[len(parent) :].split("/")[0] + "/" for n in names if "/" in n[len(parent) :]]
        return f"{said}: did you mean the prefix {parent + folders[0]!r}?" if folders else said

    def _check_token_reads(self) -> None:
        # A SAS token that lists but cannot read fails every image the same way: say it once, before any.
        # (A token without "sp" takes its permissions from a stored access policy: left to the service.)
        if self.settings.auth != "sas":
            return
        permissions = granted(self.settings.sas_token or "")
        if permissions is not None and "r" not in permissions:
            raise AccessDeniedError(
                f"access denied to {self.location}: the SAS token from {self.settings.origin} does not grant read "
                f"(sp={permissions}); cvbulk reads the blobs: use a token with sp=rl, or an account key"
            )

    async def entries(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[StorageEntry]:
        async for page in self.pages(under=under, page_size=page_size):
            for entry in page:
                yield entry

    async def folders(self) -> list[str]:
        prefix = self.location.prefix
        found: list[str] = []
        try:
            async for item in self._container.walk_blobs(name_starts_with=prefix or None, delimiter="/"):
                if item.name.endswith("/") and not hasattr(item, "size"):  # a BlobPrefix, not a blob
                    found.append(item.name[len(prefix) :].rstrip("/"))
        except Exception as exc:
            raise storage_error(exc, where=self.location, settings=self.settings) from None
        return sorted(found)

    async def stat(self, name: str) -> StorageEntry:
        blob = self._container.get_blob_client(self._blob_name(check_name(name)))
        try:
            self.stats.requests += 1
            props = await blob.get_blob_properties()
        except Exception as exc:
            raise storage_error(exc, where=self.location, item=name, settings=self.settings) from None
        props.name = self._blob_name(name)
        return blob_entry(props, self.location.prefix)

    async def _download(self, entry: StorageEntry, offset: int | None, length: int | None) -> Any:
        from azure.core import MatchConditions

        blob = self._container.get_blob_client(self._blob_name(entry.name))
        self.stats.requests += 1
        once = {"retry_total": 0} if self._down else {}
        return await blob.download_blob(
            offset=offset, length=length, etag=entry.etag, match_condition=MatchConditions.IfNotModified, **once
        )

    async def read_head(self, entry: StorageEntry, size: int = HEADER_BYTES) -> bytes:
        """Up to ``size`` first bytes: one ranged GET (``Range: bytes=0-size-1``), ETag-checked."""
        if size <= 0:
            raise ValueError("size must be positive")
        if entry.size == 0:
            # a ranged read of an empty blob is a 416: nothing to read, but the blob must still be there unchanged
            await self._check_unchanged(entry)
            data = b""
        else:
            try:
                downloader = await self._download(entry, 0, min(size, entry.size))
                data = await downloader.readall()
            except Exception as exc:
                raise await self._read_error(exc, entry) from None
            self.down = None
        self.stats.header_reads += 1
        self.stats.header_bytes += len(data)
        self.stats.bytes_read += len(data)
        return data

    async def read_head_at(self, entry: StorageEntry, url: ReadUrl, size: int = HEADER_BYTES) -> bytes:
        """As :meth:`read_head`, through a read URL of the blob (one plain ranged GET with ``If-Match``, see
        ``_ranged``): the SDK's pipeline costs ~5x the CPU of the request itself, and a URL about to be handed to
        the service is at hand anyway. Errors as from :meth:`read_head`; the URL never appears in one."""
        if size <= 0:
            raise ValueError("size must be positive")
        if entry.size == 0:
            return await self.read_head(entry, size)
        data = await self._range_at(entry, url, 0, min(size, entry.size))
        self.stats.header_reads += 1
        return data

    async def read_heads_at(
        self, reads: Sequence[tuple[StorageEntry, ReadUrl]], size: int = HEADER_BYTES
    ) -> list[bytes | StorageError]:
        """:meth:`read_head_at` for many blobs at once: their ranged GETs pipelined on a few connections (see
        ``_ranged``). Each is its first bytes or the error :meth:`read_head_at` would have raised; a read that
        did not come back whole goes again alone (its retries, its words)."""
        if size <= 0:
            raise ValueError("size must be positive")
        out: list[bytes | StorageError | None] = [None] * len(reads)
        lean = [k for k, (entry, _) in enumerate(reads) if entry.size > 0] if self._lean_reads else []
        if lean:
            if self._http is None:
                self._http = RangedReader(connect_timeout=self.timeouts.connect, read_timeout=self.timeouts.read)
            stops = [min(size, reads[k][0].size) for k in lean]
            answers = await self._http.get_many(
                [(reads[k][1].url, 0, stop, reads[k][0].etag) for k, stop in zip(lean, stops)]
            )
            self.stats.requests += len(lean)
            for k, stop, answer in zip(lean, stops, answers):
                if isinstance(answer, tuple) and answer[0] in (200, 206):
                    data = answer[1][:stop]
                    self.down = None  # it answers (again)
                    self.stats.header_reads += 1
                    self.stats.header_bytes += len(data)
                    self.stats.bytes_read += len(data)
                    out[k] = data
        gone: StorageUnreachableError | None = None
        for k, (entry, url) in enumerate(reads):
            if out[k] is None:  # an empty blob, a proxy, or an answer that was not the bytes: alone, as ever
                if gone is not None:  # the account stopped answering for one of the group: not the rest in turn
                    out[k] = StorageUnreachableError(
                        f"reading {entry.name!r} in {self.location} not tried: {gone.reason}", where=self.location
                    )
                    continue
                try:
                    out[k] = await self.read_head_at(entry, url, size)
                except StorageError as exc:
                    out[k] = exc
                    if isinstance(exc, StorageUnreachableError):
                        gone = exc
        return out  # type: ignore[return-value]  # every slot is filled

    async def read_more_at(self, entry: StorageEntry, url: ReadUrl, head: bytes, size: int) -> bytes:
        """``head`` (the first bytes, as read) grown to ``size`` bytes (fewer for a shorter blob): one more ranged
        GET of only the bytes not read yet, under the same ``If-Match``."""
        stop = min(size, entry.size)
        if stop <= len(head):
            return head
        return head + await self._range_at(entry, url, len(head), stop)

    async def _range_at(self, entry: StorageEntry, url: ReadUrl, start: int, stop: int) -> bytes:
        """Bytes ``start`` to ``stop`` (exclusive) of the blob through ``url``; a transient failure (no answer,
        408, 429, 5xx) is tried again ``timeouts.retries`` times, as the SDK's own requests are."""
        if not self._lean_reads:
            try:
                data = await (await self._download(entry, start, stop - start)).readall()
            except Exception as exc:
                raise await self._read_error(exc, entry) from None
            self.stats.header_bytes += len(data)
            self.stats.bytes_read += len(data)
            return data
        if self._http is None:
            self._http = RangedReader(connect_timeout=self.timeouts.connect, read_timeout=self.timeouts.read)
        attempt = 0
        while True:
            self.stats.requests += 1
            try:
                status, data = await self._http.get(url.url, start, stop, entry.etag)
                why = f"HTTP {status}"
            except (OSError, TimeoutError) as exc:  # RangedReadError is an OSError
                status, data, why = 0, b"", type(exc).__name__
            if status in (200, 206):
                self.down = None
                data = data[: stop - start] if status == 206 else data[start:stop]
                self.stats.header_bytes += len(data)
                self.stats.bytes_read += len(data)
                return data
            if status in (404, 412):
                # gone or changed: one look through the SDK tells which (and words it as read_head would)
                await self._check_unchanged(entry)
                raise ItemChangedError(
                    f"{entry.name!r} in {self.location} changed while it was read", status=412, where=self.location
                )
            if status == 409 and b"BlobArchived" in data:  # no retry makes an archived blob readable
                raise ItemArchivedError(f"{entry.name!r} in {self.location} {ARCHIVED}", status=409, where=self.location)
            if status == 403:
                raise AccessDeniedError(
                    f"access denied reading {entry.name!r} in {self.location} (HTTP 403)", status=403, where=self.location
                )
            if (status in _TRANSIENT or status == 0) and attempt < (0 if self._down else self.timeouts.retries):
                attempt += 1
                await anyio.sleep(_RETRY_WAIT * 2 ** (attempt - 1))
                continue
            if status == 0:
                self.down = gone = StorageUnreachableError(
                    f"reading {entry.name!r} in {self.location} failed: {why}", where=self.location
                )
                raise gone
            raise StorageRequestError(
                f"reading {entry.name!r} in {self.location} failed: {why}", status=status, where=self.location
            )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await super().aclose()

    async def _check_unchanged(self, entry: StorageEntry) -> None:
        from azure.core import MatchConditions

        blob = self._container.get_blob_client(self._blob_name(entry.name))
        try:
            self.stats.requests += 1
            await blob.get_blob_properties(etag=entry.etag, match_condition=MatchConditions.IfNotModified)
        except Exception as exc:
            raise await self._read_error(exc, entry) from None

    async def stream(self, entry: StorageEntry) -> AsyncIterator[bytes]:
        """The blob in chunks of at most 1 MiB; every chunk request carries the listed ETag."""
        if entry.size == 0:
            await self._check_unchanged(entry)
            return
        try:
            downloader = await self._download(entry, None, None)
            self.down = None
            async for chunk in downloader.chunks():
                self.stats.bytes_read += len(chunk)
                yield chunk
        except StorageError:
            raise
        except Exception as exc:
            raise await self._read_error(exc, entry) from None

    async def _read_error(self, exc: Exception, entry: StorageEntry) -> StorageError:
        """The error of a failed conditional read. A precondition failure (412) is also what a deleted blob
        gives on some services (Azurite): one unconditional look tells "changed" from "gone"."""
        error = storage_error(exc, where=self.location, item=entry.name, settings=self.settings)
        if isinstance(error, StorageUnreachableError):
            self.down = error
        if isinstance(error, ItemChangedError):
            blob = self._container.get_blob_client(self._blob_name(entry.name))
            try:
                self.stats.requests += 1
                exists = await blob.exists()
            except Exception:
                return error
            if not exists:
                return ItemMissingError(
                    f"{entry.name!r} in {self.location} is gone (deleted since it was listed)", where=self.location
                )
        return error

    async def read_all(self, entry: StorageEntry) -> bytes:
        return b"".join([chunk async for chunk in self.stream(entry)])

    def body(self, entry: StorageEntry) -> BlobBody:
        return BlobBody(self, entry)

    async def read_url(self, entry: StorageEntry, *, ttl: float = 3600.0) -> ReadUrl:
        name = self._blob_name(entry.name)
        blob_url = self.blob_url(name)
        try:
            url = await self._signer.sign(name, blob_url, ttl)
        except StorageError:
            raise
        except ValueError:
            raise
        except Exception as exc:
            raise storage_error(exc, where=self.location, item=entry.name, settings=self.settings) from None
        self.stats.urls_signed += 1
        return url
