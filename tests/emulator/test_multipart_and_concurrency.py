"""The multipart splitter, and concurrent uploads that never corrupt the store."""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from cvbulk.emulator import Emulator
from cvbulk.emulator._multipart import boundary_of, split_form

from ._helpers import Api, jpeg, multipart

pytestmark = pytest.mark.timeout(30)


def test_split_form_reads_names_filenames_and_bytes():
    body = (
        b"preamble\r\n--XyZ\r\n"
        b'Content-Disposition: form-data; name="imageData"; filename="a \\"b\\".jpg"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        b"\x00\r\n--Xy not the end\r\n"
        b"\r\n--XyZ\r\n"
        b"Content-Disposition: form-data; name=imageData; filename*=UTF-8''%C3%A9t%C3%A9.png\r\n\r\n"
        b"second\r\n--XyZ--\r\n"
    )
    assert boundary_of('multipart/form-data; charset=utf-8; boundary="XyZ"') == b"XyZ"
    assert split_form(body, b"XyZ") == [
        ("imageData", 'a "b".jpg', b"\x00\r\n--Xy not the end\r\n"),
        ("imageData", "été.png", b"second"),
    ]
    with pytest.raises(ValueError):
        split_form(b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nno end", b"XyZ")


async def test_concurrent_batches_with_overlapping_images_stay_consistent():
    async with Emulator() as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        pid = (await api.project())["id"]
        tag = (await api.tag(pid, "t"))["id"]
        statuses: list[str] = []

        async def send(batch: int) -> None:
            # batches overlap by half: every image is sent twice, by two concurrent requests
            images = [(f"{i}", jpeg(i)) for i in range(batch * 8, batch * 8 + 16)]
            _, body = await api.call("POST", f"/projects/{pid}/images", data=multipart(images),
                                     params={"tagIds": tag}, expect=None)
            statuses.extend(i["status"] for i in body["images"])

        async with anyio.create_task_group() as tg:
            for batch in range(12):
                tg.start_soon(send, batch)
        unique = 12 * 8 + 8
        assert statuses.count("OK") == unique and statuses.count("OKDuplicate") == len(statuses) - unique
        _, count = await api.call("GET", f"/projects/{pid}/images/count")
        _, images = await api.call("GET", f"/projects/{pid}/images", params={"take": "256"})
        assert count == unique and len({i["id"] for i in images}) == unique
        _, [t] = await api.call("GET", f"/projects/{pid}/tags")
        assert t["imageCount"] == unique
