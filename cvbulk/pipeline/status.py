"""The one outcome vocabulary of every job: :class:`Status` (what the state file stores) and
:class:`Outcome` (what happened to one item of a batch)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Status", "Outcome", "FINAL_OK", "FAILURE_STATUSES", "RETRY_STATUSES", "STATUSES"]


class Status(str, enum.Enum):
    """A file's recorded state. str-valued: state files store (and older ones hold) the plain words."""

    # Success-like final outcomes: nothing to do on resume unless the file changed.
    UPLOADED = "uploaded"
    DUPLICATE = "duplicate"
    PREDICTED = "predicted"
    EXPORTED = "exported"
    SKIPPED = "skipped"
    # Bad input (cannot be fixed): retried only when the file changed.
    REJECTED = "rejected"
    # The service refused the image (a per-image error in a 207): retried only when the file changed.
    FAILED = "failed"
    # Transient trouble (timeouts, retry budget spent): always retried on resume.
    ERROR = "error"
    # Intent written before a batch is sent: the files may or may not be on the service.
    SENDING = "sending"

    # A member is its word everywhere: in dicts (hash), f-strings, JSON and SQLite.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def ok(self) -> bool:
        return self in FINAL_OK

    @property
    def failure(self) -> bool:
        return self in FAILURE_STATUSES


FINAL_OK: frozenset[str] = frozenset(
    {Status.UPLOADED, Status.DUPLICATE, Status.PREDICTED, Status.EXPORTED, Status.SKIPPED}
)
FAILURE_STATUSES: frozenset[str] = frozenset({Status.REJECTED, Status.FAILED, Status.ERROR})
RETRY_STATUSES: frozenset[str] = frozenset({Status.ERROR, Status.SENDING})
STATUSES: frozenset[str] = FINAL_OK | FAILURE_STATUSES | {Status.SENDING}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What happened to one item: its status, the service's id for it, a one-line reason when it did
    not succeed, the bytes sent, and ``detail`` for what a job keeps besides (a prediction, how a
    migrated image went)."""

    item: T
    status: Status
    image_id: str | None = None
    reason: str | None = None
    nbytes: int = 0
    detail: Any = None
