"""The Azure SDK side: one async container client per location, and azure-core errors as storage errors."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ._location import Location
from ._sas import sas_expiry
from ._settings import StorageSettings
from ._types import StorageTimeouts
from .errors import (
    ARCHIVED,
    AccessDeniedError,
    ContainerNotFoundError,
    CredentialError,
    ItemArchivedError,
    ItemChangedError,
    ItemMissingError,
    NotFoundError,
    StorageError,
    StorageRequestError,
    StorageUnreachableError,
)

__all__ = ["make_service_client", "storage_error", "CHUNK_BYTES"]

#: Download chunk size: the most one streaming read holds in memory at a time.
CHUNK_BYTES = 1024 * 1024

_AUTHENTICATION_CODES = {"AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation"}


def make_service_client(settings: StorageSettings, timeouts: StorageTimeouts) -> tuple[Any, Any]:
    """``(BlobServiceClient, credential)``; close both (the credential may be a DefaultAzureCredential)."""
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    credential = settings.credential()
    client = BlobServiceClient(
        settings.account_url,
        credential=credential,
        connection_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        # the SDK's default waits 15 s before the first retry; a run of thousands of items wants short waits
        retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=timeouts.retries),
        max_single_get_size=CHUNK_BYTES,
        max_chunk_get_size=CHUNK_BYTES,
    )
    return client, credential


def storage_error(
    exc: BaseException,
    *,
    where: Location | str,
    item: str | None = None,
    settings: StorageSettings | None = None,
) -> StorageError:
    """The storage error for ``exc`` raised by an SDK call about ``where`` (and one ``item`` in it); with
    ``settings``, a 403 under an expired SAS token says that (the service does not always)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceModifiedError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, StorageError):
        return exc
    about = f"{item!r} in {where}" if item else str(where)
    mine = where if item else None  # an item's error: its reason leaves the location out
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, TimeoutError)):
        # about the whole location (a listing): fatal for the run, so the line says what to do next
        if item:  # one item's read: its outcome says which storage did not answer, not where the item sits
            return StorageUnreachableError(
                f"{item!r} in {where}: the storage account did not answer ({type(exc).__name__})",
                where=where,
            )
        then = "; once it answers, run the same command again (nothing done is lost)"
        return StorageUnreachableError(f"storage at {_endpoint(where)} did not answer: {type(exc).__name__}{then}")
    code = getattr(exc, "error_code", None)
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
    code = str(getattr(code, "value", code)) if code else None  # StorageErrorCode is a str enum
    if isinstance(exc, ResourceModifiedError) or code == "ConditionNotMet" or status == 412:
        return ItemChangedError(
            f"{about} changed since it was listed (ETag no longer matches)", status=412, code=code, where=mine
        )
    if code == "BlobArchived":
        return ItemArchivedError(f"{about} {ARCHIVED}", status=status, code=code, where=mine)
    if status == 404 or code in ("ContainerNotFound", "BlobNotFound"):
        container = where.container if isinstance(where, Location) else ""
        if code == "ContainerNotFound":
            return ContainerNotFoundError(f"container {container!r} not found at {_endpoint(where)}", status=404, code=code)
        if item:
            return ItemMissingError(f"{about} is gone (deleted since it was listed)", status=404, code=code, where=mine)
        return NotFoundError(f"{about} not found", status=404, code=code)
    if status in (401, 403):
        expiry = sas_expiry(settings.sas_token or "") if settings is not None and settings.auth == "sas" else None
        if expiry is not None and expiry <= datetime.now(timezone.utc):
            why = f"the SAS token from {settings.origin} expired at {expiry.isoformat()}"  # type: ignore[union-attr]
        elif code in _AUTHENTICATION_CODES or code is None:
            why = "authentication failed (a wrong key, or a SAS token that has expired or is not valid yet)"
        elif code == "AuthorizationFailure":
            why = "not authorised (AuthorizationFailure: a wrong key, a missing permission or a network rule)"
        else:
            why = f"the credentials lack the permission ({code})"
        return AccessDeniedError(f"access denied to {about}: {why}", status=status, code=code, where=mine)
    if isinstance(exc, ClientAuthenticationError):
        # DefaultAzureCredential found no way to sign in (no az login, no managed identity...)
        return CredentialError(f"could not get a token for {about}: {type(exc).__name__}: {exc}")
    if isinstance(exc, HttpResponseError):
        return StorageRequestError(f"{about}: HTTP {status} {code or ''}".rstrip(), status=status, code=code, where=mine)
    return StorageRequestError(f"{about}: {type(exc).__name__}: {exc}", where=mine)


def _endpoint(where: Location | str) -> str:
    if isinstance(where, Location):
        return where.account_url or f"az://{where.container}"
    return str(where)
