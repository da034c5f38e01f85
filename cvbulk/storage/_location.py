"""Where images live: a local folder or a blob container (and a prefix in it), parsed from one string.

Accepted forms::

    az://container/prefix                                       account from the credentials
    https://<account>.blob.core.windows.net/container/prefix    (any ``<account>.blob.<suffix>`` host)
    http://127.0.0.1:10000/devstoreaccount1/container/prefix    path-style (Azurite, an IP or localhost host)
    ./images, /data/images, C:\\images                           a local folder

A query string on a URL is taken as a SAS token: kept on the location for the credentials, never shown.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._scrub import register_secret
from .errors import LocationError

__all__ = ["Location", "parse_location"]

_CONTAINER_RE = re.compile(r"^(?:\$root|\$web|\$logs|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")
_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
_BLOB_HOST_RE = re.compile(r"^(?P<account>[^.]+)\.blob\.(?P<suffix>.+)$")
_MAX_BLOB_NAME = 1024
# what only a connection string or a bare SAS token holds (a location's own SAS token comes after its "?")
_SECRET_RE = re.compile(r"(?i)(?:^|;)\s*(?:AccountKey|SharedAccessSignature)=|(?:^|&)sig=")


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed location. ``kind`` is ``"local"`` or ``"blob"``.

    For a blob location, ``account_url`` is the service URL (``https://acct.blob.core.windows.net`` or
    ``http://127.0.0.1:10000/devstoreaccount1``), None for ``az://`` (the credentials name the account);
    ``prefix`` is empty or ends in ``/``, so names under it never match a sibling (``a/`` not ``ab``).
    """

    kind: str
    container: str = ""
    prefix: str = ""
    account_name: str | None = None
    account_url: str | None = None
    path: Path | None = None
    sas_token: str | None = field(default=None, repr=False, compare=False)

    @property
    def is_blob(self) -> bool:
        return self.kind == "blob"

    def __str__(self) -> str:
        if self.kind == "local":
            return str(self.path)
        if self.account_url is None:
            return f"az://{self.container}/{self.prefix}"
        return f"{self.account_url}/{self.container}/{self.prefix}"

    @property
    def key(self) -> str:
        """The one name of this place for state files (a default state path, a journal's fingerprint): the
        account, the container and the prefix, however the location was typed (``az://``, ``https://``, a
        path-style ``http://HOST:PORT/ACCOUNT``, with or without a SAS token or a trailing slash), never a secret.
        A local folder's is its absolute path. An ``az://`` location knows its account once it is opened."""
        if self.kind == "local":
            return str(Path(self.path or ".").resolve())
        account = self.account_name or "?"
        return f"blob://{account}/{self.container}/{self.prefix}"

    def child(self, name: str) -> str:
        """The full blob name (or local relative path) of ``name`` relative to the prefix."""
        return self.prefix + name


def _normalise_prefix(raw: str, text: str) -> str:
    prefix = unquote(raw).strip("/")
    if not prefix:
        return ""
    if any(part in ("", ".", "..") for part in prefix.split("/")):
        raise LocationError(f"bad prefix in {_shown(text)}: empty, '.' or '..' path segment")
    if len(prefix) >= _MAX_BLOB_NAME:
        raise LocationError(f"bad prefix in {_shown(text)}: longer than {_MAX_BLOB_NAME} characters")
    return prefix + "/"


def _check_container(container: str, text: str) -> str:
    if not container:
        raise LocationError(f"no container in {_shown(text)}: expected az://CONTAINER/PREFIX")
    if not _CONTAINER_RE.match(container):
        raise LocationError(
            f"bad container name {container!r} in {_shown(text)}: 3-63 lower-case letters, digits and single hyphens"
        )
    return container


def _shown(text: str) -> str:
    return repr(text.split("?", 1)[0])


def _is_path_style_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_location(text: str) -> Location:
    """Parse ``text`` into a :class:`Location`; a :class:`LocationError` (one line) when it is malformed."""
    text = text.strip()
    if not text:
        raise LocationError("empty location")
    if _SECRET_RE.search(text.split("?", 1)[0]):
        # a connection string or a bare SAS token pasted where a location goes: never a folder to create
        raise LocationError(
            "that is a storage connection string or SAS token, not a location: put it in "
            "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_SAS_TOKEN) and give az://CONTAINER/PREFIX"
        )
    scheme_match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme_match is None:
        return Location(kind="local", path=Path(text).expanduser())
    scheme = scheme_match.group(1).lower()
    if scheme == "file":
        return Location(kind="local", path=Path(unquote(urlsplit(text).path)))
    if scheme == "az":
        if "?" in text:
            raise LocationError(
                f"az:// takes no query string ({_shown(text)}): a SAS token goes in AZURE_STORAGE_SAS_TOKEN, or "
                "after the https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX form"
            )
        rest = text[len("az://") :]
        container, _, prefix = rest.partition("/")
        return Location(
            kind="blob", container=_check_container(container, text), prefix=_normalise_prefix(prefix, text)
        )
    if scheme not in ("http", "https"):
        raise LocationError(f"unsupported location scheme {scheme + '://'!r}: use az://, https:// or a local folder")
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if not host:
        raise LocationError(f"no host in {_shown(text)}")
    if parts.username or parts.password:
        raise LocationError(f"credentials in the URL {_shown(text)} are not supported: use a SAS token or a key")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    segments = parts.path.lstrip("/").split("/", 1) if parts.path.strip("/") else []
    if _is_path_style_host(host):
        # http://127.0.0.1:10000/devstoreaccount1/container/prefix: the account is the first path segment
        account = unquote(segments[0]) if segments else ""
        if not account:
            raise LocationError(f"no account in {_shown(text)}: expected http://HOST:PORT/ACCOUNT/CONTAINER/PREFIX")
        account_url = f"{parts.scheme.lower()}://{netloc}/{account}"
        path = segments[1] if len(segments) > 1 else ""
    else:
        match = _BLOB_HOST_RE.match(host)
        if match is None:
            raise LocationError(f"not a blob storage URL {_shown(text)}: expected https://ACCOUNT.blob.core.windows.net/…")
        account = match.group("account")
        account_url = f"{parts.scheme.lower()}://{netloc}"
        path = parts.path.lstrip("/")
    if not _ACCOUNT_RE.match(account):
        raise LocationError(f"bad account name {account!r} in {_shown(text)}: 3-24 lower-case letters and digits")
    container, _, prefix = path.partition("/")
    sas = parts.query or None
    register_secret(sas)
    return Location(
        kind="blob",
        container=_check_container(unquote(container), text),
        prefix=_normalise_prefix(prefix, text),
        account_name=account,
        account_url=account_url,
        sas_token=sas,
    )
