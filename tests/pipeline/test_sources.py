"""Upload from a source that is not a folder: the plug point blob storage uses (``UploadOptions.source``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cvbulk.client import BytesBody, ImageBody
from cvbulk.pipeline.prepare import prepare_image
from cvbulk.pipeline.sources import ImageSource, LocalFolder
from cvbulk.pipeline.upload import run_upload
from tests.corpus import make_tree
from tests.pipeline.test_upload import FakeTraining, opts


@dataclass(frozen=True)
class _Blob:
    relpath: str
    size: int
    mtime_ns: int  # an etag's stand-in: changes when the content does


class MemorySource:
    """Images held in a dict (a test stand-in for a container of blobs)."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.bodies = 0

    @property
    def location(self) -> str:
        return "memory://test"

    async def entries(self, *, include_hidden: bool = False) -> AsyncIterator[Any]:
        for name in sorted(self.blobs):
            yield _Blob(name, len(self.blobs[name]), hash(self.blobs[name]) & 0xFFFF)

    def prepare(self, entry, limits, regions):
        return prepare_image(data=self.blobs[entry.relpath], limits=limits, regions=regions)

    def body(self, entry, size: int) -> ImageBody:
        self.bodies += 1
        return BytesBody(self.blobs[entry.relpath], entry.relpath.rsplit("/", 1)[-1])


async def test_upload_from_another_source_resumes_like_a_folder(tmp_path):
    root = tmp_path / "tree"  # the labels (folders) come from here; the bytes from the source
    expected = make_tree(root, {"a": 5, "b": 3})
    source = MemorySource({rel: (root / rel).read_bytes() for rel in expected})
    _typed: ImageSource = source  # a structural protocol: nothing to inherit
    fake = FakeTraining()
    p = fake.add_project("proj")
    first = await run_upload(fake, opts(tmp_path, root, "proj", source=source))
    assert first.ok and first.counts == {"uploaded": 8}
    assert source.bodies == 8 and fake.tag_counts(p.id) == {"a": 5, "b": 3}
    again = await run_upload(fake, opts(tmp_path, root, "proj", source=source))
    assert again.ok and again.counts == {} and source.bodies == 8  # the journal knew them all


def test_the_local_folder_is_a_source(tmp_path):
    folder = LocalFolder(tmp_path)
    assert folder.location == str(tmp_path.resolve())
