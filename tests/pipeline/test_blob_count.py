"""The total of a run from a container, before the transfer: docs/cli.md promises "the total is the final one from
the first line" (a folder is counted in a worker thread within a few seconds' budget). A container is counted the
same way, by a names-only listing (5,000 a page) within the budget: without it a predict of 5,000 blobs at 20/s
showed "193/?" with no ETA for minutes although listing them takes a second."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

from cvbulk.pipeline.sources import open_image_source
from tests._azurite import azurite, azurite_container, put_blobs  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


def test_a_small_container_is_counted_up_front(monkeypatch, azurite, azurite_container):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)

    async def go() -> int | None:
        from azure.storage.blob.aio import BlobServiceClient

        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            await put_blobs(service, azurite_container, {f"t{i % 3}/{i}.jpg": b"x" for i in range(30)})
        async with open_image_source(f"az://{azurite_container}/") as source:
            return await anyio.to_thread.run_sync(source.count_within, 5.0)

    assert anyio.run(go) == 30
