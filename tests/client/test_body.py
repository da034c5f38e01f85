"""Image bodies read as the request is written: multipart and base64 JSON, retries re-read, sizes up front."""

from __future__ import annotations

import base64
import json
import os

import pytest

from cvbulk.client import BodyChanged, BytesBody, FileBody, ImageBody, ImageFileCreateEntry, Region, read_body
from cvbulk.client._multipart import files_json, image_multipart


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


async def _written(payload) -> bytes:
    sink = _Sink()
    await payload.write(sink)
    return bytes(sink.data)


async def test_file_body_reads_per_call_and_holds_no_descriptor(tmp_path):
    path = tmp_path / "a.jpg"
    data = os.urandom(3 * 1024 + 7)
    path.write_bytes(data)
    body = FileBody(path, len(data), chunk_size=1024)
    assert isinstance(body, ImageBody) and body.name == "a.jpg"
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    chunks = body.chunks()
    first = await chunks.__anext__()  # a request waiting mid-body holds no open file
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
    rest = b"".join([c async for c in chunks])
    assert first + rest == data
    assert await read_body(body) == data  # a second read (a retry) starts over


async def test_a_file_that_shrank_is_an_error_not_a_short_body(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 100)
    body = FileBody(path, 200)
    with pytest.raises(BodyChanged):
        await read_body(body)


async def test_multipart_knows_its_length_and_streams_bodies(tmp_path):
    path = tmp_path / "b.png"
    path.write_bytes(b"file-bytes")
    writer = image_multipart([("00-a.jpg", b"raw"), ("01-b.png", FileBody(path, 10))])
    raw = await _written(writer)
    assert writer.size == len(raw)
    assert b'filename="01-b.png"' in raw and b"file-bytes" in raw and b"raw" in raw


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 1024 * 1024 + 5])
async def test_files_json_is_the_json_the_client_sends(size):
    data = os.urandom(size)
    body = BytesBody(data, "x.jpg")
    entries = [
        ImageFileCreateEntry(name="x.jpg", contents=body, tag_ids=("t1",), regions=(Region("t1", 0.1, 0.2, 0.3, 0.4),)),
        ImageFileCreateEntry(name="y.jpg", contents=b"plain", tag_ids=()),
    ]
    payload = files_json(entries, ("t2",), {"k": "v"})
    raw = await _written(payload)
    assert payload.size == len(raw)
    doc = json.loads(raw)
    assert base64.b64decode(doc["images"][0]["contents"]) == data
    assert base64.b64decode(doc["images"][1]["contents"]) == b"plain"
    assert doc["images"][0]["regions"][0]["left"] == 0.1
    assert doc["tagIds"] == ["t2"] and doc["metadata"] == {"k": "v"}


async def test_multipart_reads_a_run_of_small_files_in_one_hop(tmp_path, monkeypatch):
    import cvbulk.client._multipart as multipart

    hops: list[int] = []
    real = multipart.read_run

    def counted(lead, heads, bodies):
        hops.append(len(bodies))
        return real(lead, heads, bodies)

    monkeypatch.setattr(multipart, "read_run", counted)
    files = []
    for i, size in enumerate((300_000, 300_000, 300_000, 600_000, 2_000_000, 10)):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(bytes([i]) * size)
        files.append((path.name, FileBody(path, size)))
    writer = image_multipart([*files[:5], ("raw.jpg", b"raw"), files[5]])
    raw = await _written(writer)
    assert writer.size == len(raw)
    for i, (_, body) in enumerate(files):
        assert bytes([i]) * body.size in raw
    # three files fit in 1 MiB, then one, then the 2 MB file streams by itself; bytes break the run
    assert hops == [3, 1, 1]
    again = await _written(image_multipart(files[:2]))  # a retry builds a new body: it reads again
    assert bytes([1]) * 300_000 in again and hops[-1] == 2


async def test_multipart_refuses_a_file_that_shrank_in_a_run(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"a" * 10)
    b.write_bytes(b"b" * 5)
    with pytest.raises(BodyChanged):
        await _written(image_multipart([("a.jpg", FileBody(a, 10)), ("b.jpg", FileBody(b, 10))]))
