"""LocalSource: the same interface as a container, on a folder."""

from __future__ import annotations

import os

import pytest

from cvbulk.storage import ImageSource, ItemChangedError, ItemMissingError, LocalSource, SourceBody, open_source


@pytest.fixture
def tree(tmp_path):
    files = {
        "Hemlock/a.jpg": b"\xff\xd8" + b"a" * 70000,
        "Hemlock/b.jpg": b"\xff\xd8b",
        "Japanese Cherry/deep/c.png": b"\x89PNGc",
        "loose.jpg": b"loose",
        "a0.jpg": b"sorts after the folder a/",
        "a/x.jpg": b"x",
        ".hidden.jpg": b"h",
        ".git/config": b"g",
    }
    for name, data in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


async def test_lists_like_a_container(tree):
    async with open_source(str(tree)) as source:
        assert isinstance(source, LocalSource) and isinstance(source, ImageSource)
        entries = [e async for e in source.entries()]
        assert [e.name for e in entries] == sorted(e.name for e in entries)  # blob order: by full name
        assert [e.name for e in entries] == [
            "Hemlock/a.jpg", "Hemlock/b.jpg", "Japanese Cherry/deep/c.png", "a/x.jpg", "a0.jpg", "loose.jpg"
        ]
        assert [len(p) async for p in source.pages(page_size=4)] == [4, 2]
        assert await source.folders() == ["Hemlock", "Japanese Cherry", "a"]
        assert [e.name async for e in source.entries(under="Japanese Cherry")] == ["Japanese Cherry/deep/c.png"]
        a = entries[0]
        assert (a.size, a.tag, a.content_type) == (70002, "Hemlock", "image/jpeg")
        assert await source.stat("Hemlock/a.jpg") == a


async def test_reads_and_bodies(tree):
    async with open_source(str(tree)) as source:
        a = await source.stat("Hemlock/a.jpg")
        assert await source.read_head(a) == (b"\xff\xd8" + b"a" * 70000)[: 64 * 1024]
        assert await source.read_head(a, 4) == b"\xff\xd8aa"
        assert source.stats.header_bytes == 64 * 1024 + 4
        body = source.body(a)
        assert isinstance(body, SourceBody) and (body.size, body.name) == (70002, "Hemlock/a.jpg")
        assert b"".join([c async for c in body.chunks()]) == b"".join([c async for c in body.chunks()])
        assert await source.read_all(a) == (tree / "Hemlock/a.jpg").read_bytes()


async def test_changed_and_deleted_files(tree):
    async with open_source(str(tree)) as source:
        a = await source.stat("Hemlock/a.jpg")
        b = await source.stat("Hemlock/b.jpg")
        (tree / "Hemlock/a.jpg").write_bytes(b"rewritten")
        os.utime(tree / "Hemlock/a.jpg", ns=(1, 1))  # a different mtime even on a coarse clock
        (tree / "Hemlock/b.jpg").unlink()
        with pytest.raises(ItemChangedError):
            await source.read_head(a)
        with pytest.raises(ItemMissingError):
            await source.read_all(b)
        with pytest.raises(ItemMissingError):
            await source.stat("Hemlock/b.jpg")
        assert (await source.stat("Hemlock/a.jpg")).etag != a.etag
