"""Every bad-input case as its typed, one-line, secret-free error: against Azurite and dead endpoints."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from cvbulk.storage import (
    AccessDeniedError,
    ContainerNotFoundError,
    PrefixNotFoundError,
    StorageError,
    StorageSettings,
    StorageTimeouts,
    StorageUnreachableError,
    open_sink,
    open_source,
)
from tests._azurite import ACCOUNT, KEY
from tests.storage.conftest import put_blobs

WRONG_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="


def _assert_clean(error: StorageError, *secrets: str) -> None:
    message = str(error)
    assert "\n" not in message and message
    assert "sig=" not in message and "AccountKey=" not in message
    for secret in secrets:
        assert secret not in message and secret not in repr(error)


async def test_container_not_found(azurite, azurite_service, azurite_container, environ):
    await put_blobs(azurite_service, azurite_container + "o", {})  # one the account does hold
    with pytest.raises(ContainerNotFoundError) as info:
        async with open_source(f"az://{azurite_container}/x", environ=environ):
            pass
    assert info.value.fatal and azurite_container in str(info.value)
    assert "containers there:" in str(info.value)  # the next step: the names it could have been
    _assert_clean(info.value, KEY)
    with pytest.raises(ContainerNotFoundError):
        async with open_sink(f"az://{azurite_container}/x", environ=environ):
            pass


async def test_prefix_with_nothing_under_it(azurite, azurite_service, azurite_container, environ):
    await put_blobs(azurite_service, azurite_container, {"real/a.jpg": b"a"})
    with pytest.raises(PrefixNotFoundError, match="nothing under"):
        async with open_source(f"az://{azurite_container}/rea", environ=environ):
            pass
    # the container itself, even empty, is a valid (empty) source
    await put_blobs(azurite_service, azurite_container + "e", {})
    async with open_source(f"az://{azurite_container}e", environ=environ) as source:
        assert [e async for e in source.entries()] == []


async def test_local_folder_not_found(tmp_path):
    with pytest.raises(PrefixNotFoundError, match="no such folder"):
        async with open_source(str(tmp_path / "missing")):
            pass


async def test_wrong_key_is_access_denied(azurite, azurite_service, azurite_container):
    await put_blobs(azurite_service, azurite_container, {"a.jpg": b"a"})
    settings = StorageSettings(ACCOUNT, azurite.account_url, "key", "AZURE_STORAGE_KEY", account_key=WRONG_KEY)
    with pytest.raises(AccessDeniedError) as info:
        async with open_source(f"az://{azurite_container}", settings=settings):
            pass
    assert info.value.status == 403 and "wrong key" in str(info.value)  # Azure: AuthenticationFailed; Azurite: AuthorizationFailure
    _assert_clean(info.value, WRONG_KEY)


def _sas(container: str, *, expiry: datetime, **permissions: bool) -> str:
    return generate_container_sas(
        ACCOUNT, container, account_key=KEY, permission=ContainerSasPermissions(**permissions), expiry=expiry
    )


async def test_expired_sas_is_access_denied(azurite, azurite_service, azurite_container):
    await put_blobs(azurite_service, azurite_container, {"a.jpg": b"a"})
    token = _sas(azurite_container, expiry=datetime.now(timezone.utc) - timedelta(minutes=1), read=True, list=True)
    with pytest.raises(AccessDeniedError) as info:
        async with open_source(f"{azurite.url(azurite_container)}?{token}"):
            pass
    assert "expired" in str(info.value)
    _assert_clean(info.value, token)


async def test_sas_without_list_permission_is_access_denied(azurite, azurite_service, azurite_container):
    await put_blobs(azurite_service, azurite_container, {"a.jpg": b"a"})
    token = _sas(azurite_container, expiry=datetime.now(timezone.utc) + timedelta(hours=1), read=True)
    with pytest.raises(AccessDeniedError) as info:
        async with open_source(f"{azurite.url(azurite_container)}?{token}"):
            pass
    assert info.value.status == 403 and "needs sp=rl" in str(info.value)  # which permissions, not only "lacks"
    _assert_clean(info.value, token)
    with pytest.raises(AccessDeniedError, match="needs sp=wl"):  # an export target: write and list
        async with open_sink(f"{azurite.url(azurite_container)}?{token}"):
            pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


FAST = StorageTimeouts(connect=0.5, read=0.5, probe=1.5, retries=1)


async def test_a_listener_that_never_answers_is_unreachable_within_the_deadline():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nobody ever reads or answers
        port = silent.getsockname()[1]
        settings = StorageSettings(ACCOUNT, f"http://127.0.0.1:{port}/{ACCOUNT}", "key", "x", account_key=KEY)
        started = time.monotonic()
        with pytest.raises(StorageUnreachableError):
            async with open_sink("az://imgs/p", settings=settings, timeouts=FAST):
                pass
        assert time.monotonic() - started < FAST.probe + 1.0


def test_the_default_deadline_is_under_ten_seconds():
    assert StorageTimeouts().probe < 10


async def test_sas_without_read_permission_is_access_denied_at_once(azurite, azurite_service, azurite_container):
    # a list-only token can list but not read one blob: fatal before any item, not one failure per image
    await put_blobs(azurite_service, azurite_container, {"a.jpg": b"a"})
    token = _sas(azurite_container, expiry=datetime.now(timezone.utc) + timedelta(hours=1), list=True)
    with pytest.raises(AccessDeniedError) as info:
        async with open_source(f"{azurite.url(azurite_container)}?{token}"):
            pass
    assert "does not grant read" in str(info.value) and "sp=rl" in str(info.value)
    _assert_clean(info.value, token)


async def test_nothing_listening_is_said_at_once():
    # nothing listens: the SDK would retry for seconds; one TCP connect says it now
    settings = StorageSettings(ACCOUNT, f"http://127.0.0.1:{_free_port()}/{ACCOUNT}", "key", "x", account_key=KEY)
    started = time.monotonic()
    with pytest.raises(StorageUnreachableError, match="refused the connection") as info:
        async with open_source("az://imgs/p", settings=settings):  # the default timeouts: 8 s probe
            pass
    assert time.monotonic() - started < 2.0
    _assert_clean(info.value, KEY)


async def test_an_account_name_that_does_not_resolve_is_said_at_once(monkeypatch):
    import anyio

    async def no_such_host(host, port, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(anyio, "getaddrinfo", no_such_host)
    settings = StorageSettings("nosuchacct", "https://nosuchacct.blob.core.windows.net", "key", "x", account_key=KEY)
    with pytest.raises(StorageUnreachableError, match=r"'nosuchacct\.blob\.core\.windows\.net' not found") as info:
        async with open_source("az://imgs/p", settings=settings, timeouts=FAST):
            pass
    assert "check the account name" in str(info.value)


async def test_a_container_sas_that_cannot_create_still_writes_an_existing_container(
    azurite, azurite_service, azurite_container
):
    # a container SAS can never create a container: --to with one must not fail on the create attempt
    await put_blobs(azurite_service, azurite_container, {})
    token = _sas(azurite_container, expiry=datetime.now(timezone.utc) + timedelta(hours=1),
                 read=True, write=True, list=True)
    async with open_sink(f"{azurite.url(azurite_container, 'out')}?{token}", create=True) as sink:
        await sink.write_text("a.txt", "hello")
    missing = _sas(azurite_container + "x", expiry=datetime.now(timezone.utc) + timedelta(hours=1),
                   read=True, write=True, list=True)
    with pytest.raises(ContainerNotFoundError):
        async with open_sink(f"{azurite.url(azurite_container + 'x', 'out')}?{missing}", create=True):
            pass


def test_a_listing_that_gets_no_answer_says_what_to_do_next_an_item_does_not():
    from azure.core.exceptions import ServiceRequestError

    from cvbulk.storage import parse_location
    from cvbulk.storage._azure import storage_error

    where = parse_location("az://imgs/p")
    fatal = storage_error(ServiceRequestError("Cannot connect to host"), where=where)
    assert isinstance(fatal, StorageUnreachableError) and "run the same command again" in str(fatal)
    one = storage_error(ServiceRequestError("Cannot connect to host"), where=where, item="a.jpg")
    assert "did not answer" in str(one) and "run the same command" not in str(one)


async def test_a_prefix_that_is_a_blob_or_part_of_a_name_says_so(azurite, azurite_service, azurite_container, environ):
    await put_blobs(azurite_service, azurite_container, {"Hemlock/a.jpg": b"a", "Hemlock/b.jpg": b"b"})
    with pytest.raises(PrefixNotFoundError, match=r"'Hemlock/a\.jpg' is a blob, not a folder") as info:
        async with open_source(f"az://{azurite_container}/Hemlock/a.jpg", environ=environ):
            pass
    assert "the prefix 'Hemlock/'" in str(info.value)
    with pytest.raises(PrefixNotFoundError, match=r"did you mean the prefix 'Hemlock/'\?"):
        async with open_source(f"az://{azurite_container}/Hem", environ=environ):
            pass


async def test_localhost_reaches_a_server_on_127_0_0_1_whatever_address_comes_first(azurite, azurite_service, azurite_container):
    # "localhost" may resolve to ::1 before 127.0.0.1 (Azurite listens on the latter): the first check tries both
    await put_blobs(azurite_service, azurite_container, {"a.jpg": b"a"})
    url = azurite.account_url.replace("127.0.0.1", "localhost")
    settings = StorageSettings(ACCOUNT, url, "key", "x", account_key=KEY)
    async with open_source(f"az://{azurite_container}", settings=settings) as source:
        assert [e.name async for e in source.entries()] == ["a.jpg"]


def test_an_items_reason_names_the_item_and_the_fatal_line_the_location():
    from azure.core.exceptions import ServiceRequestError

    from cvbulk.storage import parse_location
    from cvbulk.storage._azure import storage_error

    where = parse_location("https://acct.blob.core.windows.net/imgs/p")

    class _Gone(Exception):
        status_code = 404
        error_code = "BlobNotFound"

    gone = storage_error(_Gone(), where=where, item="red/x.jpg")
    assert str(gone) == f"'red/x.jpg' in {where} is gone (deleted since it was listed)"  # the whole line, as ever
    assert gone.reason == "'red/x.jpg' is gone (deleted since it was listed)"  # a row's reason: the blob alone
    silent = storage_error(ServiceRequestError("Cannot connect to host"), where=where, item="red/x.jpg")
    assert silent.reason == "'red/x.jpg': the storage account did not answer (ServiceRequestError)"
    fatal = storage_error(ServiceRequestError("Cannot connect to host"), where=where)
    assert fatal.reason == str(fatal) and "acct.blob.core.windows.net" in fatal.reason
