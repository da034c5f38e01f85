"""The multipart body written in runs (files read straight into one buffer behind their part headers) is
byte for byte the multipart/form-data of its images, whatever mix of files, bytes and sizes."""

from __future__ import annotations

import os

from cvbulk.client import BytesBody, FileBody
from cvbulk.client._body import CHUNK_SIZE
from cvbulk.client._multipart import image_multipart


class _Sink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, chunk: bytes | bytearray) -> None:
        self.writes.append(bytes(chunk))


def _expected(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for name, data in parts:
        out += (
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: form-data; name="imageData"; filename="{name}"\r\n\r\n'
        ).encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def test_runs_of_files_bytes_and_a_large_file_write_the_exact_multipart(tmp_path):
    sizes = [0, 5, 400_000, 400_000, 400_000, CHUNK_SIZE, CHUNK_SIZE + 7, 3]
    images, parts = [], []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(data)
        images.append((f"{i}.jpg", FileBody(path, size)))
        parts.append((f"{i}.jpg", data))
    images.insert(3, ("mem.png", BytesBody(b"in memory", "mem.png")))
    parts.insert(3, ("mem.png", b"in memory"))
    payload = image_multipart(images)
    sink = _Sink()
    await payload.write(sink)
    raw = b"".join(sink.writes)
    assert raw == _expected(payload.boundary, parts)
    assert payload.size == len(raw)
    # the runs: [0, 5, 400 KB] [bytes] [400 KB, 400 KB] [1 MiB] [lead + head] [chunks of the large file...]
    assert len(sink.writes) < len(parts) + 4
