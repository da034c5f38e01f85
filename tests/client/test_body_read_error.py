"""An image body whose own source fails while the request is written is said as itself (``BodyReadError``
with the source's exception), not as a dropped connection retried in vain: a real emulator on 127.0.0.1."""

from __future__ import annotations

import io
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from cvbulk.client import BodyChanged, BodyReadError, ConnectionFailedError, FileBody, ImageFileCreateEntry


def _jpeg(size: tuple[int, int] = (300, 300)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


class SourceGone(Exception):
    """A source's own error (a storage account that stopped answering, in real life)."""

    reason = "'a/b.jpg' could not be read: the account did not answer"


class FailingBody:
    """Half the image, then its source fails."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def name(self) -> str:
        return "b.jpg"

    async def chunks(self) -> AsyncIterator[bytes]:
        self.calls += 1
        yield self.data[: len(self.data) // 2]
        raise SourceGone("the account at https://acct.blob.core.windows.net/?sig=SECRET123456789 did not answer")


async def test_a_source_that_fails_mid_body_is_a_body_read_error_not_retried(training_client):
    project = await training_client.create_project("body-read")
    body = FailingBody(_jpeg())
    with pytest.raises(BodyReadError) as info:
        await training_client.create_images_from_data(project.id, [("b.jpg", body)])
    err = info.value
    assert isinstance(err.error, SourceGone) and not err.retryable
    assert not isinstance(err, ConnectionFailedError)  # not the connection's fault
    assert body.calls == 1 and training_client.stats.retries == 0
    assert str(err) == "CreateImagesFromData: reading the image: " + SourceGone.reason  # the item's own line
    assert isinstance(pickle.loads(pickle.dumps(err)), BodyReadError)


@pytest.mark.parametrize("how", ["files-json", "multipart"])
async def test_a_file_that_shrank_after_it_was_sized_is_said_as_such(training_client, tmp_path: Path, how: str):
    project = await training_client.create_project("body-shrank")
    data = _jpeg((1200, 1200))
    path = tmp_path / "a.jpg"

    async def send():
        body = FileBody(path, len(data))
        if how == "multipart":  # a run of small files read in one worker-thread hop
            return await training_client.create_images_from_data(project.id, [("a.jpg", body)])
        return await training_client.create_images_from_files(project.id, [ImageFileCreateEntry(name="a.jpg", contents=body)])

    path.write_bytes(data[:100])  # sized at len(data), then cut short
    with pytest.raises(BodyReadError) as info:
        await send()
    assert isinstance(info.value.error, BodyChanged) and "changed while it was sent" in str(info.value)
    assert training_client.stats.retries == 0
    path.write_bytes(data)  # the same request with the whole file goes through: the client is not left broken
    assert (await send()).is_batch_successful


def test_secrets_in_the_source_error_are_not_repeated():
    err = BodyReadError(OSError("https://acct.blob.core.windows.net/c/a.jpg?sv=1&sig=SECRET123456789 failed"))
    assert "SECRET123456789" not in str(err) and "SECRET123456789" not in repr(err)
