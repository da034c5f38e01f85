"""Sending images from a container: by URL, and as bytes for a blob the service could not fetch.

``FallbackSender`` is the one create-images sender (``send.ImageSender``) with one addition for ``--via auto``:
the images of a URL batch that come back ``ErrorSource`` (the service could not fetch the URL: a firewall, a
private endpoint, an account it cannot see) are downloaded, checked and sent again as data, and their outcome
is that second answer's. No SAS URL reaches an outcome: reasons are the service's status words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..client._body import BytesBody
from .batch import MAX_TAGS_PER_BATCH, Batch, BatchItem
from .engine import FatalBatchError
from .prepare import TRAINING_LIMITS, ImageLimits, Rejected
from .send import ImageSender, Owners, SendOutcome
from .status import Outcome, Status

if TYPE_CHECKING:
    from .sources import BlobFolder

__all__ = ["FallbackSender", "VIA_URL", "VIA_BYTES", "VIA_FALLBACK"]

VIA_URL = "url"
VIA_BYTES = "bytes"
VIA_FALLBACK = "bytes (the service could not fetch the URL)"
_URL_ONLY = (
    "ErrorSource: the service could not fetch the blob by its URL (a firewall, a private endpoint?); "
    "--via auto (or bytes) sends such images as data"
)


def _unreachable(o: SendOutcome) -> bool:
    return o.status == Status.FAILED and (o.reason or "").startswith("ErrorSource")


def _with_via(item: BatchItem, via: str, **changes: Any) -> BatchItem:
    ctx = item.context
    if dataclasses.is_dataclass(ctx) and not isinstance(ctx, type) and any(f.name == "via" for f in dataclasses.fields(ctx)):
        changes["context"] = dataclasses.replace(ctx, via=via)
    return dataclasses.replace(item, **changes)


class FallbackSender(ImageSender):
    def __init__(
        self,
        client: Any,
        project_id: str,
        folder: BlobFolder,
        *,
        started: float | None = None,
        owners: Owners | None = None,
        limits: ImageLimits = TRAINING_LIMITS,
    ) -> None:
        super().__init__(client, project_id, started=started, owners=owners)
        self.folder = folder
        self.limits = limits

    async def send(self, batch: Batch, *, prior: Mapping[str, str | None] | None = None) -> list[SendOutcome]:
        """The batch's outcomes; raises ``FatalBatchError`` (its outcomes recorded first) once the storage account
        is found not answering: no batch goes while it is silent (the service could not fetch its URLs either)."""
        from ..storage import StorageError, StorageUnreachableError

        stopped = self.folder.stopped()
        if stopped is not None:
            raise FatalBatchError(stopped, [])  # not sent: ``sending`` in the state file, sent on resume
        watch = getattr(self.folder.storage, "cancelled_when_down", None)
        try:
            if batch.kind == "urls" or watch is None:
                outcomes = await self._send(batch, prior)
            else:
                # bodies streamed from the container: once it is found silent, the service's client would only
                # try the request again and again; it stops, its images left ``sending`` (sent again on resume)
                with watch() as scope:
                    outcomes = await self._send(batch, prior)
                if scope.cancelled_caught:
                    raise FatalBatchError(self.folder.stopped() or StorageUnreachableError(
                        f"storage at {self.folder.location} did not answer mid-run; once it answers, run the same "
                        "command again (nothing done is lost)"), [])
        except StorageError as exc:  # a body read as it was sent (as bytes): the account went away meanwhile
            if not exc.fatal:
                raise
            said = exc.reason  # the item named, not the whole location
            raise FatalBatchError(exc, [Outcome(i, Status.ERROR, reason=f"reading the image: {said}") for i in batch.items]) from None
        stopped = self.folder.stopped()
        if stopped is not None:  # the fallback found the account silent: these outcomes, then the run stops
            raise FatalBatchError(stopped, outcomes)
        return outcomes

    async def _send(self, batch: Batch, prior: Mapping[str, str | None] | None) -> list[SendOutcome]:
        outcomes = await super().send(batch, prior=prior)
        if batch.kind != "urls":
            return outcomes
        blobs = {it.key: self.folder.take_url_item(it.key) for it in batch.items}
        if self.folder.via != "auto":
            # --via url: a rerun would fail the same way; the reason names the way out
            return [dataclasses.replace(o, reason=_URL_ONLY) if _unreachable(o) else o for o in outcomes]
        retry = [k for k, o in enumerate(outcomes) if _unreachable(o)]
        if not retry:
            return outcomes
        resend: list[tuple[int, BatchItem]] = []
        for k in retry:
            item = outcomes[k].item
            blob = blobs.get(item.key)
            if blob is None:
                continue
            result = await self.folder.prepare_fallback(blob, self.limits, ())
            if isinstance(result, Rejected):
                # storage trouble is "error": a resume retries it
                outcomes[k] = Outcome(_with_via(item, VIA_FALLBACK), result.status, reason=result.reason)
                continue
            body = BytesBody(result.data, item.name)
            resend.append((k, _with_via(item, VIA_FALLBACK, body=body, url=None)))
        for group in _tag_groups([it for _, it in resend]):
            answers = await super().send(Batch("files", tuple(group)), prior=prior)
            by_key = {o.item.key: o for o in answers}
            for k, it in resend:
                if it.key in by_key:
                    outcomes[k] = by_key[it.key]
        return outcomes


def _tag_groups(items: list[BatchItem]) -> list[list[BatchItem]]:
    """Items in groups of at most 64 images and ``MAX_TAGS_PER_BATCH`` distinct tags (a files request)."""
    groups: list[list[BatchItem]] = []
    current: list[BatchItem] = []
    tags: set[str] = set()
    for it in items:
        mine = set(it.tag_ids) | {r.tag_id for r in it.regions}
        if current and (len(current) >= 64 or len(tags | mine) > MAX_TAGS_PER_BATCH):
            groups.append(current)
            current, tags = [], set()
        current.append(it)
        tags |= mine
    if current:
        groups.append(current)
    return groups
