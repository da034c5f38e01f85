"""BlobSource against a real Azurite: paged listing, prefixes, virtual folders, reads, ETags, bodies."""

from __future__ import annotations

import pytest

from cvbulk.storage import (
    HEADER_BYTES,
    BlobSource,
    ImageSource,
    ItemChangedError,
    ItemMissingError,
    SourceBody,
    open_source,
)
from tests.storage.conftest import put_blobs

TREE = {
    "flowers/Hemlock/a.jpg": b"\xff\xd8\xff" + b"A" * 100,
    "flowers/Hemlock/b.jpg": b"\xff\xd8\xff" + b"B" * 50,
    "flowers/Japanese Cherry/c.png": b"\x89PNG" + b"C" * 10,
    "flowers/Japanese Cherry/deep/d.png": b"\x89PNG" + b"D",
    "flowers/loose.jpg": b"\xff\xd8\xffloose",
    "flowersX/not-under-prefix.jpg": b"x",
    "other/e.jpg": b"e",
}


@pytest.fixture
async def tree(azurite_service, azurite_container):
    await put_blobs(azurite_service, azurite_container, TREE)
    return azurite_container


async def test_lists_under_the_prefix_with_names_relative_to_it(azurite, tree, environ):
    async with open_source(f"az://{tree}/flowers", environ=environ) as source:
        assert isinstance(source, BlobSource) and isinstance(source, ImageSource)
        entries = [e async for e in source.entries()]
    assert [e.name for e in entries] == [
        "Hemlock/a.jpg",
        "Hemlock/b.jpg",
        "Japanese Cherry/c.png",
        "Japanese Cherry/deep/d.png",
        "loose.jpg",
    ]
    first = entries[0]
    assert first.size == len(TREE["flowers/Hemlock/a.jpg"])
    assert first.etag and first.last_modified is not None and first.content_type
    assert [e.tag for e in entries] == ["Hemlock", "Hemlock", "Japanese Cherry", "Japanese Cherry", None]
    assert first.journal_key == ("Hemlock/a.jpg", first.etag)


async def test_listing_comes_in_pages(azurite, azurite_service, azurite_container, environ):
    await put_blobs(azurite_service, azurite_container, {f"p/{i:03d}.jpg": b"x" for i in range(25)})
    async with open_source(azurite.url(azurite_container, "p"), environ=environ) as source:
        sizes = [len(page) async for page in source.pages(page_size=10)]
        assert sizes == [10, 10, 5]
        assert source.stats.pages == 3 and source.stats.listed == 25
        under = [e.name async for e in source.entries(under="Nope")]
    assert under == []


async def test_virtual_folders_are_the_first_level(azurite, tree, environ):
    async with open_source(f"az://{tree}/flowers/", environ=environ) as source:
        assert await source.folders() == ["Hemlock", "Japanese Cherry"]
        hemlock = [e.name async for e in source.entries(under="Hemlock")]
    assert hemlock == ["Hemlock/a.jpg", "Hemlock/b.jpg"]
    async with open_source(f"az://{tree}", environ=environ) as whole:
        assert await whole.folders() == ["flowers", "flowersX", "other"]


async def test_ranged_read_returns_the_first_bytes_only(azurite, azurite_service, azurite_container, environ):
    big = bytes(range(256)) * 1024  # 256 KiB
    await put_blobs(azurite_service, azurite_container, {"big.bin": big, "small.txt": b"not an image", "empty": b""})
    async with open_source(f"az://{azurite_container}", environ=environ) as source:
        entries = {e.name: e async for e in source.entries()}
        head = await source.read_head(entries["big.bin"])
        assert head == big[:HEADER_BYTES]
        assert await source.read_head(entries["big.bin"], 10) == big[:10]
        # a blob that is not an image: the read returns what is there, the pipeline's check decides
        assert await source.read_head(entries["small.txt"]) == b"not an image"
        assert await source.read_head(entries["empty"]) == b""
        assert source.stats.header_reads == 4
        assert source.stats.header_bytes == HEADER_BYTES + 10 + len(b"not an image")


async def test_streaming_read_and_body_read_anew_per_attempt(azurite, azurite_service, azurite_container, environ):
    data = bytes(range(256)) * 9000  # 2.2 MiB: several 1 MiB chunks
    await put_blobs(azurite_service, azurite_container, {"x/big.jpg": data})
    async with open_source(f"az://{azurite_container}/x", environ=environ) as source:
        (entry,) = [e async for e in source.entries()]
        chunks = [c async for c in source.stream(entry)]
        assert len(chunks) == 3 and max(map(len, chunks)) <= 1024 * 1024
        assert b"".join(chunks) == data
        assert await source.read_all(entry) == data
        body = source.body(entry)
        assert isinstance(body, SourceBody)
        assert (body.size, body.name) == (len(data), "big.jpg")
        first = b"".join([c async for c in body.chunks()])
        second = b"".join([c async for c in body.chunks()])  # a retry reads the blob again
        assert first == second == data


async def test_stat_one_name(azurite, tree, environ):
    async with open_source(f"az://{tree}/flowers", environ=environ) as source:
        entry = await source.stat("Hemlock/a.jpg")
        listed, *_ = [e async for e in source.entries()]
        assert entry == listed
        with pytest.raises(ItemMissingError, match="gone"):
            await source.stat("Hemlock/none.jpg")


async def test_a_blob_changed_or_deleted_after_listing_is_a_per_item_error(
    azurite, azurite_service, azurite_container, environ
):
    await put_blobs(azurite_service, azurite_container, {"a.jpg": b"one", "b.jpg": b"two", "c.jpg": b"three"})
    async with open_source(f"az://{azurite_container}", environ=environ) as source:
        a, b, c = [e async for e in source.entries()]
        container = azurite_service.get_container_client(azurite_container)
        await container.upload_blob("a.jpg", b"replaced", overwrite=True)
        await container.delete_blob("b.jpg")
        for read in (source.read_head, source.read_all):
            with pytest.raises(ItemChangedError) as changed:
                await read(a)
            assert not changed.value.fatal and "changed since it was listed" in str(changed.value)
            with pytest.raises(ItemMissingError) as gone:
                await read(b)
            assert not gone.value.fatal and "'b.jpg'" in str(gone.value)
        with pytest.raises(ItemChangedError):
            _ = [chunk async for chunk in source.body(a).chunks()]
        assert await source.read_all(c) == b"three"
        # listed anew, the replaced blob has a new ETag: a journal keyed by (name, etag) sends it again
        again = {e.name: e async for e in source.entries()}
        assert again["a.jpg"].etag != a.etag and again["c.jpg"].etag == c.etag
        assert "b.jpg" not in again
