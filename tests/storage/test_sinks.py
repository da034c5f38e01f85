"""Sinks: a local folder and an Azurite container, written whole, replaced, listed for resume."""

from __future__ import annotations

import os

import pytest

from cvbulk.storage import BlobSink, ImageSink, LocalSink, LocationError, open_sink, open_source

JSONL = '{"image_url": "images/Hemlock/a.jpg", "label": "Hemlock"}\n'
MLTABLE = "paths:\n  - file: ./labels.jsonl\n"


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


@pytest.fixture(params=["local", "blob"])
async def target(request, tmp_path, azurite_container):
    """(location text, environ) of an empty sink of each kind."""
    if request.param == "local":
        return str(tmp_path / "export"), {}
    azurite = request.getfixturevalue("azurite")
    return f"az://{azurite_container}/exports/run1", azurite.environ()


async def test_write_list_replace_and_read_back(target):
    where, environ = target
    async with open_sink(where, environ=environ, create=True) as sink:
        assert isinstance(sink, ImageSink) and isinstance(sink, (LocalSink, BlobSink))
        await sink.write_bytes("images/Hemlock/a.jpg", b"\xff\xd8first", content_type="image/jpeg")
        await sink.write_bytes("images/Hemlock/a.jpg", b"\xff\xd8second", content_type="image/jpeg")  # replaces
        await sink.write_text("labels.jsonl", JSONL)
        await sink.write_text("MLTable", MLTABLE, content_type="application/x-yaml")
        await sink.write_stream("images/big.png", _chunks(b"\x89PNG", b"x" * 5000, b"end"))
        names = [e.name async for page in sink.pages() for e in page]
        assert names == ["MLTable", "images/Hemlock/a.jpg", "images/big.png", "labels.jsonl"]
        assert [e.name async for page in sink.pages(under="images/Hemlock") for e in page] == ["images/Hemlock/a.jpg"]
        assert await sink.exists("labels.jsonl") and not await sink.exists("images/none.jpg")
        assert sink.stats.bytes_written == len(b"\xff\xd8first") + len(b"\xff\xd8second") + len(JSONL) + len(MLTABLE) + 5007
    async with open_source(where, environ=environ) as source:
        entries = {e.name: e async for e in source.entries()}
        assert await source.read_all(entries["images/Hemlock/a.jpg"]) == b"\xff\xd8second"
        assert await source.read_all(entries["images/big.png"]) == b"\x89PNG" + b"x" * 5000 + b"end"
        assert (await source.read_all(entries["MLTable"])).decode() == MLTABLE
        assert entries["labels.jsonl"].size == len(JSONL)


async def test_a_blob_sink_sets_the_content_type(azurite, azurite_container, azurite_service):
    async with open_sink(f"az://{azurite_container}", environ=azurite.environ(), create=True) as sink:
        await sink.write_bytes("a.jpg", b"\xff\xd8", content_type="image/jpeg")
        await sink.write_text("labels.csv", "a.jpg,Hemlock\n")
    blob = azurite_service.get_blob_client(azurite_container, "a.jpg")
    assert (await blob.get_blob_properties()).content_settings.content_type == "image/jpeg"
    text = azurite_service.get_blob_client(azurite_container, "labels.csv")
    assert (await text.get_blob_properties()).content_settings.content_type == "text/plain; charset=utf-8"


async def test_names_cannot_escape_the_sink(target):
    where, environ = target
    async with open_sink(where, environ=environ, create=True) as sink:
        for bad in ("../outside.jpg", "/abs.jpg", "a//b.jpg", "a\\b.jpg", ""):
            with pytest.raises(LocationError):
                await sink.write_bytes(bad, b"x")


async def test_a_failed_local_stream_leaves_nothing_behind(tmp_path):
    async def broken():
        yield b"half"
        raise OSError("source went away")

    async with open_sink(str(tmp_path)) as sink:
        await sink.write_bytes("keep.jpg", b"old")
        with pytest.raises(OSError, match="source went away"):
            await sink.write_stream("keep.jpg", broken())
        assert (tmp_path / "keep.jpg").read_bytes() == b"old"  # the old file, whole
        assert sorted(os.listdir(tmp_path)) == ["keep.jpg"]  # no temporary file left


async def test_a_failed_blob_stream_leaves_the_old_blob(azurite, azurite_container):
    async def broken():
        yield b"half"
        raise OSError("source went away")

    async with open_sink(f"az://{azurite_container}", environ=azurite.environ(), create=True) as sink:
        await sink.write_bytes("keep.jpg", b"old")
        with pytest.raises(Exception, match="source went away"):
            await sink.write_stream("keep.jpg", broken())
    async with open_source(f"az://{azurite_container}", environ=azurite.environ()) as source:
        (entry,) = [e async for e in source.entries()]
        assert await source.read_all(entry) == b"old"
