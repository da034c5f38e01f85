"""What can go wrong with a storage location, as typed exceptions with a one-line message and no secret.

Two kinds, told apart by ``fatal``:

* fatal for the run (``fatal = True``): a malformed location, missing credentials, a container or prefix that
  does not exist, access denied, an account that does not answer. The CLI prints the one line and exits.
* per item (``fatal = False``): a blob deleted or changed since it was listed. The pipeline records it as
  that item's outcome (``str(exc)`` is the reason) and goes on.

Every message goes through :func:`cvbulk.storage._scrub.scrub_secrets` and is cut to one line, so an
azure-core message that quoted a SAS URL never reaches a log, a report or a terminal.
"""

from __future__ import annotations

from ._scrub import scrub_secrets

__all__ = [
    "StorageError",
    "ARCHIVED",
    "ItemArchivedError",
    "LocationError",
    "CredentialError",
    "MissingExtraError",
    "NotFoundError",
    "ContainerNotFoundError",
    "PrefixNotFoundError",
    "AccessDeniedError",
    "StorageUnreachableError",
    "ItemMissingError",
    "ItemChangedError",
    "ReadUrlError",
    "StorageRequestError",
]

_MAX_LEN = 300


def _one_line(text: str) -> str:
    line = " ".join(scrub_secrets(str(text)).split())
    return line if len(line) <= _MAX_LEN else line[: _MAX_LEN - 1] + "…"


class StorageError(Exception):
    """Base of every storage error. ``str(exc)`` is one line without a secret; ``status`` the HTTP status if any;
    ``reason`` the same line for an item's own outcome (the item named, the location left out: see ``where``)."""

    fatal: bool = True

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, where: object = None
    ) -> None:
        self.message = _one_line(message)
        self.status = status
        self.code = code
        # An error about one item names the item and its location (``'a/x.jpg' in https://acct.../c/p/ is gone``);
        # the item's own outcome (a report row, a CSV row already keyed by the name) says it without the location.
        self.reason = _one_line(message.replace(f" in {where}", "", 1)) if where is not None else self.message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class LocationError(StorageError, ValueError):
    """A location that cannot be parsed (``az://`` without a container, a URL that is not a blob URL...)."""


class CredentialError(StorageError):
    """No usable credentials for the account, or credentials that contradict the location."""


class MissingExtraError(CredentialError):
    """A feature needs an optional dependency that is not installed (``pip install 'cvbulk[identity]'``)."""


class NotFoundError(StorageError):
    """A container, prefix or folder that does not exist."""


class ContainerNotFoundError(NotFoundError):
    pass


class PrefixNotFoundError(NotFoundError):
    """Nothing at all under the prefix (or no such local folder)."""


class AccessDeniedError(StorageError):
    """403: the credentials are wrong or expired (SAS past its expiry) or lack the permission."""


class StorageUnreachableError(StorageError):
    """The account's endpoint did not answer within the connect deadline."""


class StorageRequestError(StorageError):
    """Any other failed storage request (5xx after retries, an unexpected status)."""


class ItemMissingError(StorageError):
    """A blob or file listed earlier is gone when read (deleted mid-run)."""

    fatal = False


class ItemChangedError(StorageError):
    """A blob or file changed since it was listed (its ETag no longer matches)."""

    fatal = False


#: What an archived blob's reason says after its name: the way out (a resume alone never reads it).
ARCHIVED = (
    "is in the Archive access tier: rehydrate it (set its tier to Hot or Cool; it takes hours), then run again"
)


class ItemArchivedError(StorageError):
    """A blob in the Archive access tier (409 BlobArchived): unreadable until it is rehydrated, whatever the retries."""

    fatal = False


class ReadUrlError(StorageError):
    """A read-only URL cannot be made with these credentials (a SAS token without read permission...)."""
