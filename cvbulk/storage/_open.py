"""Open a source or a sink from a location string: the one entry point the pipeline needs."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import anyio

from .._http1 import proxied
from ._blob_sink import BlobSink
from ._blob_source import BlobSource
from ._local import LocalSink, LocalSource
from ._location import Location, parse_location
from ._settings import StorageSettings, resolve_settings
from ._types import ImageSink, ImageSource, StorageTimeouts
from .errors import StorageUnreachableError

__all__ = ["open_source", "open_sink"]


def _as_location(where: str | Location) -> Location:
    return where if isinstance(where, Location) else parse_location(where)


async def _preflight(url: str, timeouts: StorageTimeouts) -> None:
    """A misspelt account (no such host) or a port nobody listens on, said at once: the SDK would retry either
    for seconds and the probe could only say "did not answer". Skipped behind a proxy (it resolves, not us)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or proxied(url):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with anyio.fail_after(timeouts.connect):
            await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # a name that does not resolve, told apart
            stream = await anyio.connect_tcp(host, port)  # every address (localhost: ::1, then 127.0.0.1)
    except socket.gaierror as exc:
        raise StorageUnreachableError(
            f"storage host {host!r} not found ({exc.strerror or exc}): check the account name"
        ) from None
    except TimeoutError:
        raise StorageUnreachableError(f"storage at {url} did not answer within {timeouts.connect:g} s") from None
    except OSError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc  # anyio: "All connection attempts failed"
        if isinstance(cause, ConnectionRefusedError):
            why = f"refused the connection: nothing listens on {host}:{port}"
        else:  # no route, network down...
            why = f"cannot be reached ({cause.strerror or type(cause).__name__})"
        raise StorageUnreachableError(f"storage at {url} {why}") from None
    await stream.aclose()


async def _probe(check: object, location: Location, timeouts: StorageTimeouts) -> None:
    # An account that does not answer (a black-holed endpoint, a listener that never replies) would otherwise
    # hang for connect + read timeouts times the retries; the first request gets one overall deadline.
    if location.account_url:
        await _preflight(location.account_url, timeouts)
    try:
        with anyio.fail_after(timeouts.probe):
            await check()  # type: ignore[operator]
    except TimeoutError:
        raise StorageUnreachableError(
            f"storage at {location.account_url or location} did not answer within {timeouts.probe:g} s"
        ) from None


_Endpoint = TypeVar("_Endpoint", bound="ImageSource | ImageSink")


@asynccontextmanager
async def _checked(endpoint: _Endpoint, timeouts: StorageTimeouts, *, check: bool) -> AsyncIterator[_Endpoint]:
    """The endpoint, probed first (with ``check``), closed however the caller leaves, even when cancelled."""
    try:
        if check:
            await _probe(endpoint.check, endpoint.location, timeouts)
        yield endpoint
    finally:
        with anyio.CancelScope(shield=True):
            await endpoint.aclose()


@asynccontextmanager
async def open_source(
    where: str | Location,
    *,
    settings: StorageSettings | None = None,
    environ: Mapping[str, str] | None = None,
    timeouts: StorageTimeouts | None = None,
    check: bool = True,
) -> AsyncIterator[ImageSource]:
    """``async with open_source("az://images/2026/") as source:`` a checked :class:`ImageSource`.

    A blob location takes its credentials from ``settings`` or else the environment (:func:`resolve_settings`).
    With ``check`` (the default) a missing container or prefix, denied access or an account that does not
    answer within ``timeouts.probe`` raises its fatal error here, before anything else happens."""
    location = _as_location(where)
    timeouts = timeouts or StorageTimeouts()
    source: LocalSource | BlobSource
    if location.is_blob:
        source = BlobSource(location, settings or resolve_settings(location, environ), timeouts=timeouts)
    else:
        source = LocalSource(location)
    async with _checked(source, timeouts, check=check) as opened:
        yield opened


@asynccontextmanager
async def open_sink(
    where: str | Location,
    *,
    settings: StorageSettings | None = None,
    environ: Mapping[str, str] | None = None,
    timeouts: StorageTimeouts | None = None,
    create: bool = False,
    check: bool = True,
) -> AsyncIterator[ImageSink]:
    """``async with open_sink("az://datasets/flowers/") as sink:`` a checked :class:`ImageSink`.

    ``create`` makes a missing container (a local folder is always created)."""
    location = _as_location(where)
    timeouts = timeouts or StorageTimeouts()
    sink: LocalSink | BlobSink
    if location.is_blob:
        sink = BlobSink(
            location, settings or resolve_settings(location, environ), timeouts=timeouts, create_container=create
        )
    else:
        sink = LocalSink(location)
    async with _checked(sink, timeouts, check=check) as opened:
        yield opened

