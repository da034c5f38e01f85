"""Create-images bodies read into reused buffers: images are views of them, and a kept buffer never
leaks one request's bytes into another's images."""

from __future__ import annotations

import aiohttp
import pytest

from cvbulk.emulator import Emulator, _http
from cvbulk.emulator._imaging import ImageInfo, inspect_image
from cvbulk.emulator._multipart import split_form

from ._helpers import Api, jpeg

pytestmark = pytest.mark.timeout(30)


def test_split_form_of_a_buffer_gives_views_within_its_length():
    body = b"--B\r\nContent-Disposition: form-data; name=a; filename=x.jpg\r\n\r\nabc\r\n--B--\r\n"
    buf = bytearray(body + b"stale bytes of a longer request\r\n--B\r\n")
    [(name, filename, data)] = split_form(buf, b"B", len(body))
    assert (name, filename) == ("a", "x.jpg")
    assert isinstance(data, memoryview) and bytes(data) == b"abc"
    with pytest.raises(ValueError):  # the closing delimiter past the length does not count
        split_form(buf, b"B", len(body) - 8)


def test_buffers_hand_out_the_smallest_kept_buffer_that_fits():
    pool = _http._Buffers(keep=2)
    small, big = pool.take(10), pool.take(100)
    pool.give(small)
    pool.give(big)
    assert pool.take(50) is big and pool.take(5) is small
    pool.give(bytearray(1))
    pool.give(bytearray(3))
    pool.give(bytearray(2))  # the smallest kept one makes way for a larger one
    assert sorted(map(len, pool._free)) == [2, 3]


def test_header_check_of_a_view_matches_the_whole_image():
    big = jpeg(1, (900, 700), noise=True)
    assert len(big) > 64 * 1024
    assert inspect_image(memoryview(big)) == inspect_image(big) == ImageInfo("JPEG", 900, 700)
    assert inspect_image(memoryview(big[:70_000])) == ImageInfo("JPEG", 900, 700)  # header only
    assert inspect_image(memoryview(b"x" * 70_000)) == "ErrorImageFormat"


async def test_reused_buffers_keep_each_requests_bytes(monkeypatch):
    monkeypatch.setattr(_http, "_BUFFERS", _http._Buffers(keep=1))
    async with Emulator() as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        pid = (await api.project())["id"]
        sent: dict[str, bytes] = {}
        # large, then small (in the large one's buffer, stale bytes behind it), then large again
        for batch, size in enumerate(((640, 480), (64, 48), (640, 480))):
            images = [(f"{batch}-{i}.jpg", jpeg(100 * batch + i, size, noise=True)) for i in range(6)]
            _, body = await api.upload(pid, images)
            assert [i["status"] for i in body["images"]] == ["OK"] * 6
            for (_, data), result in zip(images, body["images"]):
                sent[result["image"]["originalImageUri"]] = data
        assert len(_http._BUFFERS._free) == 1
        for uri, data in sent.items():
            async with s.get(uri) as resp:
                assert resp.status == 200 and await resp.read() == data
