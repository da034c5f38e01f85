"""Helpers shared by the export and migrate tests."""

from __future__ import annotations

import hashlib
from typing import Any

import anyio

from cvbulk.pipeline.engine import NullProgress


class CancelAfter(NullProgress):
    """A progress sink that cancels the run once ``n`` images are done: a kill mid-run."""

    def __init__(self, n: int, scope: anyio.CancelScope) -> None:
        self.n, self.scope, self.ok = n, scope, 0

    def advanced(self, *, ok=0, failed=0, skipped=0, nbytes=0):
        self.ok += ok
        if self.ok >= self.n:
            self.scope.cancel()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def project_images(client: Any, project_id: str, *, digits: int | None = None) -> dict[str, tuple]:
    """sha256 of each image's bytes -> (sorted tag names, sorted regions, metadata): what a project holds.

    ``digits`` rounds the region boxes (a float written and read back may differ in its last bits).
    """

    def box(v: float) -> float:
        return v if digits is None else round(v, digits)

    names = {t.id: t.name for t in await client.get_tags(project_id)}
    out: dict[str, tuple] = {}
    async for image in client.iter_images(project_id):
        data = await client.download(image.original_image_uri)
        tags = tuple(sorted(names[t.tag_id] for t in image.tags or ()))
        regions = tuple(sorted(
            (names[r.tag_id], box(r.left), box(r.top), box(r.width), box(r.height)) for r in image.regions or ()
        ))
        out[sha(data)] = (tags, regions, dict(image.metadata or {}))
    return out
