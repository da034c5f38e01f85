"""Short-lived read-only URLs for blobs, so the service fetches images itself and no byte passes cvbulk.

* an account key signs a service SAS (HMAC, no request);
* DefaultAzureCredential gets a user-delegation key (one request, cached and renewed) and signs with it;
* a SAS-token credential is reused as it is if it grants read (``sp`` holds ``r``) and has not expired;
  there is nothing to sign a narrower one with, so a token without read is a :class:`ReadUrlError`.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import anyio

from ._settings import AUTH_IDENTITY, AUTH_KEY, StorageSettings
from ._types import ReadUrl
from .errors import ReadUrlError

__all__ = ["ReadUrlSigner", "sas_expiry", "too_wide", "granted"]

# Clock skew allowance: a SAS valid from a few minutes ago works on a service whose clock runs behind ours.
_SKEW = timedelta(minutes=5)
# A user-delegation key lives this long, and is renewed when less than a URL's lifetime is left.
_DELEGATION_LIFETIME = timedelta(hours=6)


class _Template:
    """The read SAS of one second (start, expiry, key), made once by the SDK's ``generate_blob_sas`` for a
    stand-in blob name, then signed again for each real name: only the canonical resource in the string to
    sign differs from blob to blob, so each URL costs one HMAC instead of a full ``generate_blob_sas``
    (~45 us). Without the SDK's ``sts_hook`` (older SDKs) every name is signed by ``generate_blob_sas``."""

    _STAND_IN = "cvbulk-sas-template"

    def __init__(self, make: Any, head: str, tail: str, token_head: str, key: bytes | None) -> None:
        self._make = make  # the SDK call for one name: the fallback
        self._head = head  # the string to sign up to the blob name
        self._tail = tail  # and after it
        self._token_head = token_head  # the token up to "sig="
        self._key = key
        self._pads = None if key is None else hmac_pads(key)
        self.key_for: tuple[Any, ...] | None = None

    @classmethod
    def make(cls, account: str, container: str, key: Any, now: datetime, expiry: datetime, https: bool) -> _Template:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        common: dict[str, Any] = {
            "account_name": account,
            "container_name": container,
            "permission": BlobSasPermissions(read=True),
            "start": now - _SKEW,
            "expiry": expiry,
        }
        if https:
            common["protocol"] = "https"
        common["account_key" if isinstance(key, str) else "user_delegation_key"] = key

        def one(name: str, **extra: Any) -> str:
            return str(generate_blob_sas(blob_name=name, **common, **extra))

        seen: list[str] = []
        try:
            token = one(cls._STAND_IN, sts_hook=seen.append)
        except TypeError:  # an SDK without sts_hook
            return cls(one, "", "", "", None)
        resource = f"/blob/{account}/{container}/{cls._STAND_IN}\n"
        sts = seen[0] if seen else ""
        head, sep, tail = sts.partition(resource)
        token_head, has_sig, _ = token.rpartition("&sig=")
        if not sep or not has_sig or resource in tail:
            return cls(one, "", "", "", None)
        secret = key if isinstance(key, str) else key.value
        return cls(one, head + f"/blob/{account}/{container}/", "\n" + tail, token_head + "&sig=", base64.b64decode(secret))

    def token(self, blob_name: str) -> str:
        if self._pads is None:
            return self._make(blob_name)
        inner, outer = self._pads[0].copy(), self._pads[1].copy()
        inner.update((self._head + blob_name + self._tail).encode("utf-8"))
        outer.update(inner.digest())
        # quoted as the SDK quotes it (urllib's quote, "/" safe: of base64's alphabet only "+" and "=" change);
        # str.replace, not str.translate with a dict, which looks up each character (~25k instructions a token)
        return self._token_head + base64.b64encode(outer.digest()).decode().replace("+", "%2B").replace("=", "%3D")


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def hmac_pads(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 (RFC 2104) of ``key`` with its two padded key blocks hashed once: a signature is then two
    ``copy`` + ``update`` of them (~1.5 us) instead of a MAC context made per blob (``hmac.digest``: OpenSSL's
    EVP_Q_mac looks the algorithm up each time, ~2.2 us and ~23k instructions)."""
    if len(key) > 64:  # SHA-256's block
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


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


def too_wide(origin: str, permissions: str) -> str:
    """Why a SAS token of the user's is not put in URLs for the service: it grants more than reading."""
    return (
        f"the SAS token from {origin} grants more than read (sp={permissions}): cvbulk does not hand it to the "
        "service; images go as bytes (a read-only token, sp=rl, lets the service fetch them by URL)"
    )


def granted(token: str) -> str | None:
    """The permissions (``sp``) a SAS token grants; None when it names none (a stored access policy's)."""
    found = parse_qs(token).get("sp")
    return found[0] if found else None


class ReadUrlSigner:
    """Signs read-only URLs for the blobs of one container."""

    def __init__(self, settings: StorageSettings, service_client: Any, container: str) -> None:
        self._settings = settings
        self._service = service_client
        self._container = container
        self._delegation_key: Any = None
        self._delegation_expiry: datetime | None = None
        self._delegation_lock = anyio.Lock()
        self._template: _Template | None = None  # the SAS of the current second, for any blob name

    async def sign(self, blob_name: str, blob_url: str, ttl: float) -> ReadUrl:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        now = _now()
        expiry = now + timedelta(seconds=ttl)
        auth = self._settings.auth
        if auth not in (AUTH_KEY, AUTH_IDENTITY):
            return self._reuse_token(blob_url, now)
        key = self._settings.account_key if auth == AUTH_KEY else await self._user_delegation_key(expiry)
        https = blob_url.startswith("https://")
        template = self._template
        if template is None or template.key_for != (now, ttl, https, id(key)):
            template = self._template = _Template.make(self._settings.account_name, self._container, key, now, expiry, https)
            template.key_for = (now, ttl, https, id(key))
        return ReadUrl(f"{blob_url}?{template.token(blob_name)}", expiry)

    def _reuse_token(self, blob_url: str, now: datetime) -> ReadUrl:
        token = self._settings.sas_token or ""
        permissions = granted(token) or ""
        if set(permissions) - set("rl"):
            raise ReadUrlError(too_wide(self._settings.origin, permissions))
        if "r" not in permissions:
            raise ReadUrlError(
                f"the SAS token from {self._settings.origin} does not grant read (sp={permissions or 'none'}): "
                "use a token with read (sp=rl) or an account key"
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
