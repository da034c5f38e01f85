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
from typing import Any, cast

import anyio.to_thread
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import content_disposition_header
from aiohttp.payload import Payload

from ._body import CHUNK_SIZE, BytesBody, FileBody, ImageBody, as_body, read_run

__all__ = ["image_multipart", "files_json", "IMAGE_FIELD", "ImageData"]

IMAGE_FIELD = "imageData"

#: What an image argument of the client takes: its bytes, or a body read when the request is written.
ImageData = bytes | bytearray | memoryview | ImageBody


def _small_file(body: ImageBody) -> bool:
    return type(body) is FileBody and body.size <= CHUNK_SIZE


_CRLF = b"\r\n"


class _Streamed(Payload):
    """A body whose length is known up front and whose bytes are written as the request goes out.

    ``failed``: what an image's own source raised while it was read (not the socket's trouble); the HTTP
    library reports the request as a dropped connection, the client raises this instead (``BodyReadError``)."""

    _length = 0
    failed: BaseException | None = None

    async def _chunks(self, body: ImageBody) -> AsyncIterator[bytes]:
        """``body.chunks()``, a failure of its source kept in ``failed`` (then raised on)."""
        chunks = body.chunks()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except Exception as exc:
                self.failed = exc
                raise
            yield chunk

    @property
    def size(self) -> int:
        return self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a streamed body has no text form")

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self.write(writer)  # the length is ours: the whole body is always written


class _ImageMultipart(_Streamed):
    """multipart/form-data of images, the bytes aiohttp's MultipartWriter would send, in fewer writes: a
    run of small files is read in one worker-thread hop into one buffer with its part headers and goes out
    in one write; an image in memory goes out with its headers in one write; a large body streams chunk by
    chunk. Memory holds one run (about CHUNK_SIZE) per request being written, never a whole request."""

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
        bodies, heads, count = self._bodies, self._heads, len(self._bodies)
        lead = b""  # the previous part's CRLF goes out with the next part's headers
        index = 0
        while index < count:
            body = bodies[index]
            if _small_file(body):
                # A run of small files (at most CHUNK_SIZE of image bytes) read straight into one buffer
                # behind their part headers, in one worker-thread hop: one copy of each image, one write.
                end, total = index + 1, body.size
                while end < count and _small_file(bodies[end]) and total + bodies[end].size <= CHUNK_SIZE:
                    total += bodies[end].size
                    end += 1
                files = cast("list[FileBody]", bodies[index:end])  # _small_file: FileBody each
                try:
                    run = await anyio.to_thread.run_sync(read_run, lead, heads[index:end], files)
                except OSError as exc:  # a file changed or vanished since it was sized
                    self.failed = exc
                    raise
                await writer.write(run)
                index = end
            elif isinstance(body, BytesBody):
                await writer.write(b"".join((lead, heads[index], body.data)))
                index += 1
            else:  # a large file or another kind of body streams chunk by chunk
                await writer.write(lead + heads[index])
                async for chunk in self._chunks(body):
                    await writer.write(chunk)
                index += 1
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
            async for text in _base64(self._chunks(body)):
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
