"""Projects built fast for the export tests: images created straight through the client, 64 per call,
with tags, regions and metadata; and what a project holds, read back for comparison."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from typing import Any

import anyio
from PIL import Image as PILImage

from cvbulk.client import ImageFileCreateEntry, Region
from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests.pipeline._transfer_support import project_images

TAGS = ("oak", "pine", "birch", "Cherry blossom", "a;b")


def tiny_jpeg(i: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small JPEG unique to ``i`` (its pixels spell the number), quick to make."""
    rng = random.Random(i)
    im = PILImage.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    px = im.load()
    for k in range(20):
        px[k % size[0], k // size[0]] = (i >> k & 1) * 255, (i * 7 >> k & 1) * 255, 0
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


async def build_project(client: Any, name: str, kind: str, n: int, *, untagged: int = 0, seed: int = 1) -> str:
    """A ``kind`` project (multiclass, multilabel, detection) with ``n`` images, the first ``untagged``
    of them without labels; batch ``k`` carries the metadata ``{"batch": k}``."""
    rng = random.Random(seed)
    domain_id = None
    if kind == "detection":
        domain_id = next(d.id for d in await client.get_domains() if d.type == "ObjectDetection")
    ctype = {"multiclass": "Multiclass", "multilabel": "Multilabel"}.get(kind)
    project = await client.create_project(name, domain_id=domain_id, classification_type=ctype)
    tag_ids = [(await client.create_tag(project.id, t)).id for t in TAGS]
    entries: list[ImageFileCreateEntry] = []
    for i in range(n):
        tags: Sequence[str] = ()
        regions: tuple[Region, ...] = ()
        if i >= untagged:
            if kind == "multiclass":
                tags = (rng.choice(tag_ids),)
            elif kind == "multilabel":
                tags = tuple(rng.sample(tag_ids, rng.randint(1, 3)))
            else:
                boxes = []
                for _ in range(rng.randint(1, 3)):
                    w, h = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5)
                    boxes.append(Region(rng.choice(tag_ids), rng.uniform(0, 1 - w), rng.uniform(0, 1 - h), w, h))
                regions = tuple(boxes)
        entries.append(ImageFileCreateEntry(f"{i}.jpg", tiny_jpeg(i + seed * 100_000), tag_ids=tags, regions=regions))

    async def send(k: int) -> None:
        chunk = entries[k * 64 : (k + 1) * 64]
        summary = await client.create_images_from_files(project.id, chunk, metadata={"batch": str(k)})
        assert all(r.status == "OK" for r in summary.images), [r.status for r in summary.images]

    async with anyio.create_task_group() as tg:
        for k in range((n + 63) // 64):
            tg.start_soon(send, k)
    return project.id


async def upload_labels(client: Any, root: Any, labels: str, project: str, tmp: Any, **kw: Any) -> str:
    """``cvbulk upload ROOT --labels FILE --project NAME --create`` as a library call; the project id."""
    stem = labels.replace("/", "_")
    result = await run_upload(client, UploadOptions(
        root=root, project=project, create=True, labels=labels, state=tmp / f"up-{stem}.sqlite",
        report=tmp / f"up-{stem}.json", **kw))
    assert result.ok, result.report["failures"][:3]
    return str(result.report["extra"]["project"]["id"])


async def contents(client: Any, project_id: str) -> dict[str, tuple]:
    """sha256 of each image -> (sorted tags, sorted regions, metadata)."""
    return await project_images(client, project_id)


def assert_same(before: dict[str, tuple], after: dict[str, tuple], *, metadata: bool = False) -> None:
    """The same images (sha256), the same tags per image, regions within 1e-6 (and the same metadata)."""
    assert before.keys() == after.keys(), (len(before), len(after))
    for digest, (tags, regions, meta) in before.items():
        tags2, regions2, meta2 = after[digest]
        assert tags2 == tags, (digest, tags, tags2)
        assert len(regions2) == len(regions), (digest, regions, regions2)
        for a, b in zip(regions, regions2):
            assert a[0] == b[0] and all(abs(x - y) <= 1e-6 for x, y in zip(a[1:], b[1:])), (a, b)
        if metadata:
            assert meta2 == meta, (digest, meta, meta2)
