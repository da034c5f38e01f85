"""Credentials for a blob location, found the Azure way, held in a value object that never shows a secret.

Order (the first that applies wins):

1. a SAS token in the location URL (``https://acct.blob.core.windows.net/c/p?sv=...&sig=...``);
2. ``AZURE_STORAGE_CONNECTION_STRING`` (``AccountName=...;AccountKey=...``, ``BlobEndpoint=...;SharedAccessSignature=...``
   or ``UseDevelopmentStorage=true`` for Azurite on its default port);
3. ``AZURE_STORAGE_ACCOUNT`` (or the account of an https location) with ``AZURE_STORAGE_KEY`` or
   ``AZURE_STORAGE_SAS_TOKEN``;
4. ``DefaultAzureCredential`` (managed identity, workload identity, ``az login``...) when the optional
   ``azure-identity`` is installed (``pip install 'cvbulk[identity]'``).
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._location import Location
from ._scrub import register_secret
from .errors import CredentialError, LocationError, MissingExtraError

__all__ = ["StorageSettings", "resolve_settings", "parse_connection_string", "AZURITE_ACCOUNT", "AZURITE_KEY"]

# Azurite's well-known development account (public, documented by Microsoft; treated as a secret all the same).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_AZURITE_URL = "http://127.0.0.1:10000/" + AZURITE_ACCOUNT

AUTH_KEY = "key"
AUTH_SAS = "sas"
AUTH_IDENTITY = "identity"


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """How to reach one storage account. ``auth`` is ``"key"``, ``"sas"`` or ``"identity"``; ``origin`` says
    where the credentials came from (a variable name, "the location URL"). The key and SAS token are kept
    out of ``repr``, ``str`` and equality."""

    account_name: str
    account_url: str
    auth: str
    origin: str
    account_key: str | None = field(default=None, repr=False, compare=False)
    sas_token: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        register_secret(self.account_key)
        register_secret(self.sas_token)

    def __repr__(self) -> str:
        return (
            f"StorageSettings(account={self.account_name!r}, url={self.account_url!r}, auth={self.auth!r}, "
            f"origin={self.origin!r})"
        )

    __str__ = __repr__

    def credential(self) -> Any:
        """The credential object the Azure SDK takes. For ``identity`` a new async DefaultAzureCredential
        (the caller closes it)."""
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

        if self.auth == AUTH_KEY:
            return AzureNamedKeyCredential(self.account_name, self.account_key or "")
        if self.auth == AUTH_SAS:
            return AzureSasCredential(self.sas_token or "")
        try:
            from azure.identity.aio import DefaultAzureCredential
        except ImportError as exc:  # resolve_settings checked; a broken install still gets a clear line
            raise _missing_identity(self.account_name) from exc
        return DefaultAzureCredential()


def _missing_identity(account: str) -> MissingExtraError:
    return MissingExtraError(
        f"no credentials for storage account {account!r}: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY "
        "or AZURE_STORAGE_SAS_TOKEN, or install azure-identity (pip install 'cvbulk[identity]') to sign in "
        "with DefaultAzureCredential"
    )


def _check_key(key: str, origin: str) -> str:
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialError(f"{origin}: the account key is not base64") from None
    return key


def parse_connection_string(text: str, *, origin: str = "AZURE_STORAGE_CONNECTION_STRING") -> StorageSettings:
    """Settings from a storage connection string; a :class:`CredentialError` naming ``origin`` if it is unusable."""
    fields: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise CredentialError(f"{origin} is malformed: expected NAME=VALUE pairs separated by ';'")
        fields[name.strip().lower()] = value.strip()
    for secret_field in ("accountkey", "sharedaccesssignature"):
        register_secret(fields.get(secret_field))
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return StorageSettings(AZURITE_ACCOUNT, _AZURITE_URL, AUTH_KEY, origin, account_key=AZURITE_KEY)
    account = fields.get("accountname", "")
    endpoint = fields.get("blobendpoint", "").rstrip("/")
    if not endpoint:
        if not account:
            raise CredentialError(f"{origin} names neither AccountName nor BlobEndpoint")
        protocol = fields.get("defaultendpointsprotocol", "https").lower()
        suffix = fields.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    elif not account:
        # BlobEndpoint=https://acct.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1
        parts = urlsplit(endpoint)
        path = parts.path.strip("/")
        account = path.split("/")[0] if path else (parts.hostname or "").split(".")[0]
    key = fields.get("accountkey")
    sas = fields.get("sharedaccesssignature")
    if key:
        return StorageSettings(account, endpoint, AUTH_KEY, origin, account_key=_check_key(key, origin))
    if sas:
        return StorageSettings(account, endpoint, AUTH_SAS, origin, sas_token=_pasted_sas(sas))
    raise CredentialError(f"{origin} has neither AccountKey nor SharedAccessSignature")


def _pasted_sas(text: str) -> str:
    """A SAS token as pasted: without its leading ``?`` and without the line breaks and spaces a wrapped terminal
    or an e-mail puts in it (a token holds no whitespace of its own: its values are percent-encoded)."""
    register_secret(text)  # as pasted, too: never shown in either form
    return "".join(text.split()).lstrip("?")


def _identity_installed() -> bool:
    try:
        return importlib.util.find_spec("azure.identity") is not None
    except (ImportError, ValueError):
        return False


def resolve_settings(location: Location, environ: Mapping[str, str] | None = None) -> StorageSettings:
    """The credentials for a blob ``location`` from the location itself and the environment."""
    if not location.is_blob:
        raise LocationError(f"{location} is a local folder, not a blob location")
    env = os.environ if environ is None else environ
    if location.sas_token:
        assert location.account_name and location.account_url  # a query string only comes with a URL
        return StorageSettings(
            location.account_name, location.account_url, AUTH_SAS, "the location URL", sas_token=location.sas_token
        )
    conn = env.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if conn:
        settings = parse_connection_string(conn)
        if location.account_name and location.account_name != settings.account_name:
            raise CredentialError(
                f"AZURE_STORAGE_CONNECTION_STRING is for account {settings.account_name!r}, "
                f"the location names account {location.account_name!r}"
            )
        if location.account_url and location.account_url != settings.account_url:
            # the location says where the account answers (Azurite on another port, a private endpoint)
            settings = StorageSettings(
                settings.account_name,
                location.account_url,
                settings.auth,
                settings.origin,
                account_key=settings.account_key,
                sas_token=settings.sas_token,
            )
        return settings
    env_account = env.get("AZURE_STORAGE_ACCOUNT", "").strip()
    if env_account and location.account_name and env_account != location.account_name:
        raise CredentialError(
            f"AZURE_STORAGE_ACCOUNT is {env_account!r}, the location names account {location.account_name!r}"
        )
    account = location.account_name or env_account
    if not account:
        raise CredentialError(
            f"{location} does not name a storage account: set AZURE_STORAGE_CONNECTION_STRING or "
            "AZURE_STORAGE_ACCOUNT, or use https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX"
        )
    account_url = location.account_url or f"https://{account}.blob.core.windows.net"
    key = env.get("AZURE_STORAGE_KEY", "").strip()
    if key:
        register_secret(key)
        return StorageSettings(
            account, account_url, AUTH_KEY, "AZURE_STORAGE_KEY", account_key=_check_key(key, "AZURE_STORAGE_KEY")
        )
    sas = _pasted_sas(env.get("AZURE_STORAGE_SAS_TOKEN", ""))
    if sas:
        return StorageSettings(account, account_url, AUTH_SAS, "AZURE_STORAGE_SAS_TOKEN", sas_token=sas)
    if not _identity_installed():
        raise _missing_identity(account)
    if not account_url.startswith("https://"):
        # the SDK sends a token only over https: a plain-http endpoint (Azurite) needs a key or a SAS token
        raise CredentialError(
            f"no key or SAS token for {account_url} (DefaultAzureCredential needs https): set "
            "AZURE_STORAGE_CONNECTION_STRING (for Azurite: UseDevelopmentStorage=true), AZURE_STORAGE_KEY or "
            "AZURE_STORAGE_SAS_TOKEN"
        )
    return StorageSettings(account, account_url, AUTH_IDENTITY, "DefaultAzureCredential")
