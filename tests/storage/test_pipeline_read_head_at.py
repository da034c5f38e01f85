"""``BlobSource.read_head_at``: the header check's ranged read through the blob's read URL (Azurite)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cvbulk.storage import AccessDeniedError, ItemChangedError, ItemMissingError, ReadUrl, open_source
from tests.storage.conftest import put_blobs

DATA = bytes(range(256)) * 512  # 128 KB


async def test_reads_the_same_head_as_the_sdk_and_counts_it(azurite, azurite_container, azurite_service, environ):
    await put_blobs(azurite_service, azurite_container, {"a/x.jpg": DATA, "a/empty.jpg": b""})
    async with open_source(f"az://{azurite_container}/", environ=environ) as source:
        entries = {e.name: e for e in [e async for e in source.entries()]}
        x = entries["a/x.jpg"]
        url = await source.read_url(x)
        head = await source.read_head_at(x, url)
        assert head == DATA[: 64 * 1024] == await source.read_head(x)
        assert await source.read_head_at(x, url, 100) == DATA[:100]
        assert await source.read_head_at(entries["a/empty.jpg"], await source.read_url(entries["a/empty.jpg"])) == b""
        assert source.stats.header_reads == 4 and source.stats.header_bytes == 2 * 64 * 1024 + 100


async def test_changed_gone_and_refused(azurite, azurite_container, azurite_service, environ):
    await put_blobs(azurite_service, azurite_container, {"a/x.jpg": DATA, "a/y.jpg": DATA})
    async with open_source(f"az://{azurite_container}/", environ=environ) as source:
        entries = {e.name: e for e in [e async for e in source.entries()]}
        container = azurite_service.get_container_client(azurite_container)
        await container.upload_blob("a/x.jpg", DATA[:1000], overwrite=True)
        await container.delete_blob("a/y.jpg")
        with pytest.raises(ItemChangedError):
            await source.read_head_at(entries["a/x.jpg"], await source.read_url(entries["a/x.jpg"]))
        with pytest.raises(ItemMissingError):
            await source.read_head_at(entries["a/y.jpg"], await source.read_url(entries["a/y.jpg"]))
        signed = await source.read_url(entries["a/x.jpg"])
        forged = ReadUrl(signed.url.replace("sig=", "sig=AAAA"), datetime.now(timezone.utc) + timedelta(hours=1))
        with pytest.raises(AccessDeniedError) as info:
            await source.read_head_at(entries["a/x.jpg"], forged)
        assert "sig=" not in str(info.value)
