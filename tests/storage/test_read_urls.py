"""Read-only SAS URLs, fetched with aiohttp from a real Azurite: they work, and stop working once expired."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from cvbulk.storage import ReadUrlError, StorageSettings, _sas, open_source
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
    # (opened unchecked: a checked open already refuses such a token, test_bad_input)
    async with open_source(f"az://{container}/imgs", settings=settings, check=False) as source:
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


class _DelegatingService:
    """Stands in for the service's Get User Delegation Key (Azurite only answers it over HTTPS with OAuth)."""

    def __init__(self) -> None:
        self.calls: list[tuple[datetime, datetime]] = []

    async def get_user_delegation_key(self, start: datetime, expiry: datetime):
        from azure.storage.blob import UserDelegationKey

        self.calls.append((start, expiry))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = "00000000-0000-0000-0000-0000000000aa", "00000000-0000-0000-0000-0000000000bb"
        key.signed_start, key.signed_expiry = start.strftime("%Y-%m-%dT%H:%M:%SZ"), expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = "ZGVsZWdhdGlvbi1rZXktdmFsdWUtZm9yLXRlc3Rz"
        return key


async def test_identity_signs_with_one_cached_user_delegation_key():
    settings = StorageSettings("acct", "https://acct.blob.core.windows.net", "identity", "DefaultAzureCredential")
    service = _DelegatingService()
    signer = _sas.ReadUrlSigner(settings, service, "imgs")
    blob_url = "https://acct.blob.core.windows.net/imgs/a.jpg"
    first = await signer.sign("a.jpg", blob_url, 3600)
    second = await signer.sign("b.jpg", blob_url.replace("a.jpg", "b.jpg"), 3600)
    assert len(service.calls) == 1  # the key is reused while it outlives the URLs
    for url in (first, second):
        assert "skoid=00000000-0000-0000-0000-0000000000aa" in url.url and "sp=r&" in url.url
        assert "spr=https" in url.url and "sig=" in url.url and "sig=" not in repr(url)
    start, expiry = service.calls[0]
    assert expiry - start >= timedelta(hours=6)
    # a URL that must outlive the cached key gets a new key
    await signer.sign("c.jpg", blob_url, 7 * 3600)
    assert len(service.calls) == 2


async def test_a_sas_token_that_can_write_is_never_handed_to_the_service(azurite, container):
    # the URLs given to the service must be read-only: a token of the user's that can write or delete is not
    token = _container_sas(container, read=True, list=True, write=True, delete=True)
    async with open_source(f"{azurite.url(container, 'imgs')}?{token}", environ={}) as source:
        assert "grants more than read" in (source.urls_refused or "")
        (entry,) = [e async for e in source.entries()]
        with pytest.raises(ReadUrlError, match="grants more than read"):
            await source.read_url(entry)
        assert await source.read_all(entry) == IMAGE  # its bytes are still read
    read_only = _container_sas(container, read=True, list=True)
    async with open_source(f"{azurite.url(container, 'imgs')}?{read_only}", environ={}) as source:
        assert source.urls_refused is None
