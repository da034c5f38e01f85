"""Downloading a project's images by the links the service lists, renewing a link that has expired.

The service's image links are SAS URLs with an expiry: a long export or migration can reach an image
after its link stopped working (403). Both jobs then ask the service for the image again
(GetImagesByIds, which lists fresh links) and try once more, a few times at most. ``ImageLinks`` gathers
the renewals of the workers refused at about the same moment into one call: links listed together
expire together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio

from ..client import AuthenticationError, CustomVisionError, NotFoundError
from ._reasons import one_line

if TYPE_CHECKING:
    from ..client import Image, TrainingClient

__all__ = ["MAX_LINK_REFRESHES", "ImageLinks", "LinkProblem", "download_image"]

MAX_LINK_REFRESHES = 5  # fresh links asked for one image before its 403 counts as its outcome


class ImageLinks:
    """Fresh image links, asked for together: the workers whose downloads were refused within a moment
    of each other share one GetImagesByIds call (up to 256 ids)."""

    GATHER = 0.05  # seconds the first refused worker waits for the others to join its call

    def __init__(self, client: TrainingClient, project_id: str) -> None:
        self.client, self.project_id = client, project_id
        self.pending: set[str] = set()
        self.found: dict[str, Image | None] = {}
        self.round: anyio.Event | None = None
        self.calls = 0  # GetImagesByIds calls made
        self.refreshes = 0  # fresh links asked for (one per refused download)
        self.downloads = 0  # downloads tried

    async def fresh(self, image_id: str) -> Image | None:
        """The image as the service describes it now, with new links (None: deleted from the project)."""
        while image_id not in self.found:
            self.pending.add(image_id)
            if self.round is None:
                await self._lead()
            else:
                await self.round.wait()
        return self.found.pop(image_id)

    async def _lead(self) -> None:
        done = self.round = anyio.Event()
        try:
            await anyio.sleep(self.GATHER)
            ids = sorted(self.pending)[:256]
            self.pending.difference_update(ids)
            self.round = None  # the rest (and later refusals) start the next call
            self.calls += 1
            images = {i.id: i for i in await self.client.get_images_by_ids(self.project_id, ids)}
            for i in ids:
                self.found[i] = images.get(i)
        finally:
            if self.round is done:
                self.round = None
            done.set()


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """Why an image's bytes could not be had: ``gone`` (deleted from the project meanwhile), ``refused``
    (its link kept answering 403 however fresh: a final failure) or ``unavailable`` (the service could
    not be reached or kept failing: worth another run)."""

    kind: Literal["gone", "refused", "unavailable"]
    reason: str


async def download_image(
    client: TrainingClient, links: ImageLinks, image_id: str, url: str | None
) -> tuple[Image | None, bytes] | LinkProblem:
    """The original bytes of the image ``image_id`` listed with ``url``, asking for fresh links while the
    old ones are refused, with the image as the service last described it (None when ``url`` worked);
    or why not. A wrong key (GetImagesByIds refused too) raises ``AuthenticationError``: the run cannot
    go on."""
    refreshes = 0
    fresh: Image | None = None
    while True:
        try:
            if not url:
                raise NotFoundError("the service gave no image URI")
            links.downloads += 1
            return fresh, await client.download(url)
        except (AuthenticationError, NotFoundError) as exc:
            # An expired link answers 403 (a deleted image 404): ask the service again.
            if refreshes >= MAX_LINK_REFRESHES:
                return LinkProblem(
                    "refused", f"the image link was refused {refreshes + 1} times, fresh each time ({one_line(exc)})"
                )
            refreshes += 1
            links.refreshes += 1
            try:
                fresh = await links.fresh(image_id)
            except AuthenticationError:
                raise  # a wrong key: stop the run
            except CustomVisionError as exc:
                return LinkProblem(
                    "unavailable", f"the image link expired and a fresh one could not be had ({one_line(exc)})"
                )
            if fresh is None:
                return LinkProblem("gone", "deleted from the project meanwhile")
            url = fresh.original_image_uri
        except CustomVisionError as exc:  # retried by the client as far as its budget went
            return LinkProblem("unavailable", one_line(exc))
