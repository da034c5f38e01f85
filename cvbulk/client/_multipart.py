"""multipart/form-data bodies of image bytes, built without copying or encoding the images."""

from __future__ import annotations

from typing import Any, Sequence

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

__all__ = ["image_multipart", "IMAGE_FIELD"]

IMAGE_FIELD = "imageData"


class _ImageBytes(Payload):
    """The bytes of one image, written to the socket as they are.

    aiohttp's own BytesPayload warns (ResourceWarning) for every part over 1 MiB, and training images go to
    6 MB: this payload is the same thing without the warning.
    """

    _value: bytes | bytearray | memoryview

    def __init__(self, value: bytes | bytearray | memoryview, **kwargs: Any) -> None:
        super().__init__(value, content_type="application/octet-stream", **kwargs)
        self._size = value.nbytes if isinstance(value, memoryview) else len(value)

    @property
    def size(self) -> int:
        return self._size

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await writer.write(self._value)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        if content_length is None:
            await writer.write(self._value)
        else:
            await writer.write(self._value[:content_length])

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return bytes(self._value)


def image_multipart(images: Sequence[tuple[str, bytes | bytearray | memoryview]]) -> aiohttp.MultipartWriter:
    """One ``imageData`` part per (file name, bytes). Build a fresh one per attempt: a writer is consumed."""
    writer = aiohttp.MultipartWriter("form-data")
    for name, data in images:
        part = _ImageBytes(data)
        # plain quoted filename (as browsers and requests send it), not percent-encoded
        part.set_content_disposition("form-data", quote_fields=False, name=IMAGE_FIELD, filename=name)
        writer.append_payload(part)
    return writer
