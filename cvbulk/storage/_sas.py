"""Short-lived read-only URLs for blobs, so the service fetches images itself and no byte passes cvbulk.

* an account key signs a service SAS (HMAC, no request);
* DefaultAzureCredential gets a user-delegation key (one request, cached and renewed) and signs with it;
* a SAS-token credential is reused as it is if it grants read (``sp`` holds ``r``) and has not expired;
  there is nothing to sign a narrower one with, so a token without read is a :class:`ReadUrlError`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import anyio

from ._settings import AUTH_IDENTITY, AUTH_KEY, StorageSettings
from ._types import ReadUrl
from .errors import ReadUrlError

__all__ = ["ReadUrlSigner", "sas_expiry"]

# Clock skew allowance: a SAS valid from a few minutes ago works on a service whose clock runs behind ours.
_SKEW = timedelta(minutes=5)
# A user-delegation key lives this long, and is renewed when less than a URL's lifetime is left.
_DELEGATION_LIFETIME = timedelta(hours=6)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def sas_expiry(token: str) -> datetime | None:
    """The expiry (``se``) of a SAS token, None when it has none that parses."""
    text = (parse_qs(token).get("se") or [""])[0]
    try:
        expiry = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=timezone.utc)


class ReadUrlSigner:
    """Signs read-only URLs for the blobs of one container."""

    def __init__(self, settings: StorageSettings, service_client: Any, container: str) -> None:
        self._settings = settings
        self._service = service_client
        self._container = container
        self._delegation_key: Any = None
        self._delegation_expiry: datetime | None = None
        self._delegation_lock = anyio.Lock()

    async def sign(self, blob_name: str, blob_url: str, ttl: float) -> ReadUrl:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        if ttl <= 0:
            raise ValueError("ttl must be positive")
        now = _now()
        expiry = now + timedelta(seconds=ttl)
        auth = self._settings.auth
        if auth not in (AUTH_KEY, AUTH_IDENTITY):
            return self._reuse_token(blob_url, now)
        common: dict[str, Any] = {
            "account_name": self._settings.account_name,
            "container_name": self._container,
            "blob_name": blob_name,
            "permission": BlobSasPermissions(read=True),
            "start": now - _SKEW,
            "expiry": expiry,
        }
        if blob_url.startswith("https://"):
            common["protocol"] = "https"
        if auth == AUTH_KEY:
            token = generate_blob_sas(account_key=self._settings.account_key, **common)
        else:
            token = generate_blob_sas(user_delegation_key=await self._user_delegation_key(expiry), **common)
        return ReadUrl(f"{blob_url}?{token}", expiry)

    def _reuse_token(self, blob_url: str, now: datetime) -> ReadUrl:
        token = self._settings.sas_token or ""
        query = parse_qs(token)
        permissions = (query.get("sp") or [""])[0]
        if "r" not in permissions:
            raise ReadUrlError(
                f"the SAS token from {self._settings.origin} does not grant read (sp={permissions or 'none'}): "
                "the service could not fetch the images; use a token with read, an account key, or --via bytes"
            )
        expiry = sas_expiry(token) or now + timedelta(hours=1)
        if expiry <= now:
            raise ReadUrlError(f"the SAS token from {self._settings.origin} expired at {expiry.isoformat()}")
        return ReadUrl(f"{blob_url}?{token}", expiry)

    async def _user_delegation_key(self, needed_until: datetime) -> Any:
        async with self._delegation_lock:
            if self._delegation_key is None or self._delegation_expiry is None or self._delegation_expiry < needed_until:
                now = _now()
                expiry = max(now + _DELEGATION_LIFETIME, needed_until + _SKEW)
                self._delegation_key = await self._service.get_user_delegation_key(now - _SKEW, expiry)
                self._delegation_expiry = expiry
            return self._delegation_key
