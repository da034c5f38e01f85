"""Request bodies of images, written to the socket chunk by chunk as the request goes out.

- :func:`image_multipart`: multipart/form-data, one ``imageData`` part per image (CreateImagesFromData,
  QuickTestImage, ClassifyImage, DetectImage).
- :func:`files_json`: the JSON of CreateImagesFromFiles, each image's ``contents`` base64-encoded on the
  fly; the rest of the JSON is built once.

Both know their length before a byte is read (an :class:`~cvbulk.client.ImageBody` knows its size), so
requests carry a Content-Length; both are built afresh per attempt (a payload is consumed by sending it)
and re-read their images on a retry.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio.to_thread
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import content_disposition_header
from aiohttp.payload import Payload

from ._body import CHUNK_SIZE, BytesBody, FileBody, ImageBody, as_body, read_files

__all__ = ["image_multipart", "files_json", "IMAGE_FIELD", "ImageData"]

IMAGE_FIELD = "imageData"

#: What an image argument of the client takes: its bytes, or a body read when the request is written.
ImageData = bytes | bytearray | memoryview | ImageBody


class _ReadAhead:
    """Reads a run of small files of one request in one worker-thread hop (at most CHUNK_SIZE bytes in
    all), instead of one hop per image; the parts are written in order, so it holds one run at a time."""

    def __init__(self, bodies: Sequence[ImageBody]) -> None:
        self._bodies = list(bodies)
        self._ready: dict[int, bytes] = {}

    async def chunks(self, index: int) -> AsyncIterator[bytes]:
        body = self._bodies[index]
        if not _small_file(body):
            async for chunk in body.chunks():
                yield chunk
            return
        if index not in self._ready:
            run: list[FileBody] = []
            total = 0
            for later in self._bodies[index:]:
                if not isinstance(later, FileBody) or not _small_file(later) or (run and total + later.size > CHUNK_SIZE):
                    break
                run.append(later)
                total += later.size
            self._ready = dict(zip(range(index, index + len(run)), await anyio.to_thread.run_sync(read_files, run)))
        data = self._ready.pop(index)
        if data:
            yield data


def _small_file(body: ImageBody) -> bool:
    return type(body) is FileBody and body.size <= CHUNK_SIZE


_CRLF = b"\r\n"


class _Streamed(Payload):
    """A body whose length is known up front and whose bytes are written as the request goes out."""

    _length = 0

    @property
    def size(self) -> int:
        return self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a streamed body has no text form")

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self.write(writer)  # the length is ours: the whole body is always written


class _ImageMultipart(_Streamed):
    """multipart/form-data of images, the bytes aiohttp's MultipartWriter would send, in fewer writes: a
    run of small files is read in one worker-thread hop, and each image goes out with its part headers in
    one write (one send, not three per image); a large body streams chunk by chunk."""

    def __init__(self, images: Sequence[tuple[str, ImageData]]) -> None:
        self.boundary = boundary = uuid.uuid4().hex
        super().__init__(b"", content_type=f"multipart/form-data; boundary={boundary}")
        self._bodies = [as_body(data, name) for name, data in images]
        self._heads = [
            (
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
                + content_disposition_header("form-data", quote_fields=False, name=IMAGE_FIELD, filename=name)
                + "\r\n\r\n"
            ).encode("utf-8")
            for name, _ in images
        ]
        self._tail = f"--{boundary}--\r\n".encode()
        self._length = sum(map(len, self._heads)) + sum(b.size + 2 for b in self._bodies) + len(self._tail)

    async def write(self, writer: AbstractStreamWriter) -> None:
        ahead = _ReadAhead(self._bodies)
        lead = b""  # the previous part's CRLF goes out with the next part's headers
        for index, (head, body) in enumerate(zip(self._heads, self._bodies)):
            if body.size > CHUNK_SIZE and not isinstance(body, BytesBody):
                await writer.write(lead + head)
                async for chunk in body.chunks():
                    await writer.write(chunk)
            else:
                # one write per image: memory holds one image more, never a whole request
                await writer.write(b"".join([lead, head, *[c async for c in ahead.chunks(index)]]))
            lead = _CRLF
        await writer.write(lead + self._tail)


def image_multipart(images: Sequence[tuple[str, ImageData]]) -> Payload:
    """One ``imageData`` part per (file name, bytes or body), with a plain quoted filename (as browsers and
    requests send it, not percent-encoded). Build a fresh one per attempt: sending consumes it."""
    return _ImageMultipart(images)


_SENTINEL = "\x00cvbulk-contents\x00"
_SENTINEL_JSON = json.dumps(_SENTINEL)  # how it reads once dumped, quotes included


def _b64_size(n: int) -> int:
    return 4 * ((n + 2) // 3)


class _FilesJson(_Streamed):
    """JSON text around base64 image contents: ``pieces[i]``, then image i's contents, ... then the tail."""

    def __init__(self, pieces: list[bytes], bodies: list[ImageBody]) -> None:
        super().__init__(b"", content_type="application/json")
        self._pieces = pieces
        self._bodies = bodies
        self._length = sum(map(len, pieces)) + sum(2 + _b64_size(b.size) for b in bodies)

    async def write(self, writer: AbstractStreamWriter) -> None:
        for piece, body in zip(self._pieces, self._bodies):
            await writer.write(piece + b'"')
            async for text in _base64(body.chunks()):
                await writer.write(text)
            await writer.write(b'"')
        await writer.write(self._pieces[-1])


async def _base64(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Base64 of a stream of chunks, in multiples of 3 input bytes (so the pieces join up)."""
    carry = b""
    async for chunk in chunks:
        data = carry + chunk if carry else chunk
        cut = len(data) - len(data) % 3
        if cut:
            yield base64.b64encode(data[:cut])
        carry = data[cut:]
    if carry:
        yield base64.b64encode(carry)


def files_json(entries: Sequence[Any], tag_ids: Sequence[str] = (), metadata: Mapping[str, str] | None = None) -> Payload:
    """The CreateImagesFromFiles body of ``ImageFileCreateEntry``s whose ``contents`` are bytes or bodies."""
    bodies: list[ImageBody] = []
    images: list[dict[str, Any]] = []
    for entry in entries:
        bodies.append(as_body(entry.contents, entry.name or "image"))
        wire = dataclasses.replace(entry, contents=b"").to_json()
        wire["contents"] = _SENTINEL
        images.append(wire)
    document: dict[str, Any] = {"images": images}
    if tag_ids:
        document["tagIds"] = list(tag_ids)
    if metadata:
        document["metadata"] = dict(metadata)
    text = json.dumps(document, separators=(",", ":"))
    pieces = [p.encode() for p in text.split(_SENTINEL_JSON)]
    if len(pieces) != len(bodies) + 1:
        raise ValueError("an image name or tag holds a NUL-delimited marker cvbulk uses internally")
    return _FilesJson(pieces, bodies)
