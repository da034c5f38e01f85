"""A blob in the Archive access tier (lifecycle rules put old nightly dumps there) cannot be read until it is
rehydrated: Azure answers 409 BlobArchived. It was recorded as a transient storage error, "cannot read the blob:
... HTTP 409 (a resume tries it again)", with no CSV row, and every resume tried it again in vain. Now it is a
final per-image reason that says it is archived and to rehydrate it (from the 409's error code)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from cvbulk.pipeline.prepare import TRAINING_LIMITS, Rejected
from cvbulk.pipeline.sources import StorageTrouble, open_image_source
from tests._azurite import azurite, azurite_container, put_blobs  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)

IMAGE = Path(__file__).resolve().parents[2] / "cvbulk" / "samples" / "ImageClassification" / "Images" / "Test" / "test_image.jpg"


def test_an_archived_blob_is_a_final_reason_that_says_so(monkeypatch, azurite, azurite_container):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)

    async def go() -> object:
        from azure.storage.blob.aio import BlobServiceClient

        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            await put_blobs(service, azurite_container, {"t/old.jpg": IMAGE.read_bytes()})
            await service.get_blob_client(azurite_container, "t/old.jpg").set_standard_blob_tier("Archive")
        async with open_image_source(f"az://{azurite_container}/") as source:
            items = [e async for e in source.entries()]
            return await source.aprepare(items[0], TRAINING_LIMITS, ())

    got = anyio.run(go)
    assert isinstance(got, Rejected) and not isinstance(got, StorageTrouble), got
    assert "archive" in got.reason.lower(), got.reason
