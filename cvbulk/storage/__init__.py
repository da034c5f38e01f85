"""Where images live: local folders and Azure Blob Storage containers behind one source and one sink interface.

    from cvbulk.storage import open_source, open_sink, parse_location

    async with open_source("az://images/2026/") as source:     # or https://acct.blob.core.windows.net/...
        async for page in source.pages():                     # lazy, a page of StorageEntry at a time
            for entry in page:
                head = await source.read_head(entry)          # <= 64 KB, one ranged read
                url = await source.read_url(entry, ttl=3600)  # read-only SAS URL (url.url is secret)
                body = source.body(entry)                     # size, name, chunks() anew per attempt

Layering: the pipeline uses this package; it imports nothing of the pipeline, CLI or emulator.
Credentials: :func:`resolve_settings` (connection string, account + key / SAS token, DefaultAzureCredential).
Errors: :mod:`cvbulk.storage.errors`, one line each, never a secret.
"""

from __future__ import annotations

from ._blob_sink import BlobSink
from ._blob_source import BlobBody, BlobSource
from ._local import LocalBody, LocalSink, LocalSource
from ._location import Location, parse_location
from ._open import open_sink, open_source
from ._scrub import scrub_secrets
from ._settings import AZURITE_ACCOUNT, AZURITE_KEY, StorageSettings, parse_connection_string, resolve_settings
from ._types import (
    HEADER_BYTES,
    ImageSink,
    ImageSource,
    ReadUrl,
    SourceBody,
    StorageEntry,
    StorageStats,
    StorageTimeouts,
)
from .errors import (
    AccessDeniedError,
    ContainerNotFoundError,
    CredentialError,
    ItemArchivedError,
    ItemChangedError,
    ItemMissingError,
    LocationError,
    MissingExtraError,
    NotFoundError,
    PrefixNotFoundError,
    ReadUrlError,
    StorageError,
    StorageRequestError,
    StorageUnreachableError,
)

__all__ = [
    "HEADER_BYTES",
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "Location",
    "parse_location",
    "StorageSettings",
    "resolve_settings",
    "parse_connection_string",
    "StorageTimeouts",
    "StorageEntry",
    "StorageStats",
    "ReadUrl",
    "SourceBody",
    "ImageSource",
    "ImageSink",
    "LocalSource",
    "LocalSink",
    "LocalBody",
    "BlobSource",
    "BlobSink",
    "BlobBody",
    "open_source",
    "open_sink",
    "scrub_secrets",
    "StorageError",
    "LocationError",
    "CredentialError",
    "MissingExtraError",
    "NotFoundError",
    "ContainerNotFoundError",
    "PrefixNotFoundError",
    "AccessDeniedError",
    "StorageUnreachableError",
    "StorageRequestError",
    "ItemMissingError",
    "ItemArchivedError",
    "ItemChangedError",
    "ReadUrlError",
]
