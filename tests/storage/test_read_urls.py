"""Read-only SAS URLs, fetched with aiohttp from a real Azurite: they work, and stop working once expired."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from cvbulk.storage import ReadUrlError, StorageSettings, open_source
from cvbulk.storage import _sas
from tests._azurite import ACCOUNT, KEY
from tests.storage.conftest import put_blobs

IMAGE = b"\xff\xd8\xff" + b"pixels" * 100


@pytest.fixture
async def container(azurite_service, azurite_container):
    await put_blobs(azurite_service, azurite_container, {"imgs/Hemlock/a b.jpg": IMAGE})
    return azurite_container


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def _put(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.put(
        url, data=b"overwrite", headers={"x-ms-blob-type": "BlockBlob"}
    ) as response:
        return response.status


async def test_account_key_sas_reads_and_only_reads(azurite, container, environ):
    async with open_source(f"az://{container}/imgs", environ=environ) as source:
        (entry,) = [e async for e in source.entries()]
        url = await source.read_url(entry, ttl=600)
    assert url.url.startswith(f"{azurite.account_url}/{container}/imgs/Hemlock/a%20b.jpg?")
    assert "sp=r&" in url.url and "sig=" in url.url
    assert "sig=" not in repr(url) and "sig=" not in str(url) and "?" not in url.public_url
    assert timedelta(seconds=590) < url.expires_at - datetime.now(timezone.utc) <= timedelta(seconds=600)
    assert await _get(url.url) == (200, IMAGE)
    assert await _put(url.url) == 403  # read-only
    assert source.stats.urls_signed == 1


async def test_an_expired_url_is_refused(azurite, container, environ, monkeypatch):
    # sign "two hours ago" with a one-hour lifetime: the URL expired an hour ago
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    monkeypatch.setattr(_sas, "_now", lambda: past)
    async with open_source(f"az://{container}/imgs", environ=environ) as source:
        (entry,) = [e async for e in source.entries()]
        url = await source.read_url(entry, ttl=3600)
    status, _ = await _get(url.url)
    assert status == 403


def _container_sas(container: str, **permissions: bool) -> str:
    return generate_container_sas(
        ACCOUNT,
        container,
        account_key=KEY,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


async def test_a_sas_token_with_read_is_reused(azurite, container):
    token = _container_sas(container, read=True, list=True)
    settings = StorageSettings(ACCOUNT, azurite.account_url, "sas", "AZURE_STORAGE_SAS_TOKEN", sas_token=token)
    async with open_source(f"az://{container}/imgs", settings=settings) as source:
        (entry,) = [e async for e in source.entries()]
        assert await source.read_all(entry) == IMAGE
        url = await source.read_url(entry)
    assert url.url.endswith("?" + token)
    assert await _get(url.url) == (200, IMAGE)


async def test_a_sas_token_without_read_says_so(azurite, container):
    token = _container_sas(container, list=True)
    settings = StorageSettings(ACCOUNT, azurite.account_url, "sas", "AZURE_STORAGE_SAS_TOKEN", sas_token=token)
    async with open_source(f"az://{container}/imgs", settings=settings) as source:
        (entry,) = [e async for e in source.entries()]
        with pytest.raises(ReadUrlError) as info:
            await source.read_url(entry)
    message = str(info.value)
    assert "does not grant read (sp=l)" in message and "sig=" not in message


async def test_a_sas_url_location_lists_and_signs(azurite, container):
    token = _container_sas(container, read=True, list=True)
    async with open_source(f"{azurite.url(container, 'imgs')}?{token}", environ={}) as source:
        assert "sig=" not in str(source.location) and "sig=" not in repr(source.location)
        (entry,) = [e async for e in source.entries()]
        url = await source.read_url(entry)
    assert await _get(url.url) == (200, IMAGE)


async def test_local_files_have_no_url(tmp_path):
    (tmp_path / "a.jpg").write_bytes(IMAGE)
    async with open_source(str(tmp_path)) as source:
        assert source.supports_urls is False
        (entry,) = [e async for e in source.entries()]
        with pytest.raises(ReadUrlError, match="local file"):
            await source.read_url(entry)
