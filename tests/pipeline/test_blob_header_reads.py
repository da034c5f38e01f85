"""The header check reads 8 KB of a blob first, and only what a longer header lacks after that (Azurite)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cvbulk.pipeline.prepare import TRAINING_LIMITS
from cvbulk.pipeline.sources import FIRST_HEAD_BYTES, SourcedImage, head_wanted, open_image_source
from tests._azurite import azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
from tests.pipeline._blob_support import put_blobs

pytestmark = pytest.mark.timeout(60)


def _jpeg(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else 0).save(out, "JPEG")
    return out.getvalue()


def _with_app1(jpeg: bytes, length: int) -> bytes:
    """``jpeg`` with an APP1 segment of ``length`` bytes right after SOI (a camera's EXIF block and thumbnail)."""
    return jpeg[:2] + b"\xff\xe1" + (length + 2).to_bytes(2, "big") + bytes(length) + jpeg[2:]


def test_head_wanted_walks_jpeg_segments():
    plain = _jpeg()
    assert head_wanted(plain, 65536) is None  # the scan is in: nothing more to read
    camera = _with_app1(plain, 30_000)
    assert head_wanted(camera[:8192], 65536) == 2 + 4 + 30_000 + 4096  # past the APP1, room for the tables
    assert head_wanted(b"\x89PNG\r\n\x1a\n" + bytes(100), 65536) == 65536  # another format: all the check may read
    assert head_wanted(b"\xff\xd8garbage", 65536) is None  # not a marker where one belongs


@pytest.fixture
def blob_env(azurite, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite


async def test_a_plain_image_costs_one_small_read_and_a_camera_jpeg_one_more(blob_env, azurite_container, azurite_service):  # noqa: F811
    blobs = {"Tag/plain.jpg": _jpeg() + bytes(200_000), "Tag/camera.jpg": _with_app1(_jpeg(), 40_000),
             "Tag/cmyk.jpg": _with_app1(_jpeg(mode="CMYK"), 20_000)}
    await put_blobs(azurite_service, azurite_container, blobs)
    async with open_image_source(f"az://{azurite_container}/", via="url") as source:
        items = {it.relpath: it async for it in source.entries()}
        stats = source.storage.stats
        plain = await source.aprepare(items["Tag/plain.jpg"], TRAINING_LIMITS, ())
        assert isinstance(plain, SourcedImage) and plain.via == "url"
        assert (stats.header_reads, stats.header_bytes) == (1, FIRST_HEAD_BYTES)
        camera = await source.aprepare(items["Tag/camera.jpg"], TRAINING_LIMITS, ())
        assert isinstance(camera, SourcedImage) and camera.via == "url"
        # the first 8 KB, then only up to the end of the header: well under the 64 KB of one big read
        assert stats.header_reads == 2 and FIRST_HEAD_BYTES + 40_000 < stats.header_bytes < 8192 + 40_000 + 8192
        cmyk = await source.aprepare(items["Tag/cmyk.jpg"], TRAINING_LIMITS, ())
        assert isinstance(cmyk, SourcedImage) and cmyk.via == "bytes" and "cmyk" in " ".join(cmyk.fixes).lower()


async def test_a_group_is_checked_as_each_blob_alone_would_be(blob_env, azurite_container, azurite_service):  # noqa: F811
    """``aprepare_many``: first reads together, then each blob the first look did not settle on its own; every
    result is the one ``aprepare`` gives that blob alone (by URL, fixed as bytes, rejected, gone)."""
    blobs = {f"Tag/plain{k}.jpg": _jpeg((40 + k, 30)) for k in range(10)}
    blobs |= {"Tag/camera.jpg": _with_app1(_jpeg(), 40_000), "Tag/cmyk.jpg": _jpeg(mode="CMYK"),
              "Tag/text.jpg": b"not an image at all", "Tag/gone.jpg": _jpeg(), "Tag/empty.png": b""}
    await put_blobs(azurite_service, azurite_container, blobs)
    async with open_image_source(f"az://{azurite_container}/", via="url") as source:
        items = [it async for it in source.entries()]
        await azurite_service.get_container_client(azurite_container).delete_blob("Tag/gone.jpg")
        group = await source.aprepare_many(items, TRAINING_LIMITS, [()] * len(items))
        alone = [await source.aprepare(it, TRAINING_LIMITS, ()) for it in items]

    def shape(result):
        if isinstance(result, SourcedImage):
            return (result.via, result.format, result.fixes, result.sha256 if result.via == "bytes" else None)
        return (result.code, result.reason)

    assert [shape(r) for r in group] == [shape(r) for r in alone]
    by_name = dict(zip((it.relpath for it in items), group))
    assert sum(isinstance(r, SourcedImage) and r.via == "url" for r in group) == 11  # the ten plain, the camera
    assert by_name["Tag/cmyk.jpg"].via == "bytes"
    assert by_name["Tag/text.jpg"].code == "not_image" and by_name["Tag/empty.png"].code == "empty"
    assert by_name["Tag/gone.jpg"].code == "vanished"
