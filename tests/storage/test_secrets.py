"""No key, SAS token or connection string in any str/repr of settings, locations, URLs, errors, or in logs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from cvbulk.storage import (
    StorageError,
    StorageSettings,
    open_sink,
    open_source,
    parse_connection_string,
    parse_location,
    resolve_settings,
    scrub_secrets,
)
from tests._azurite import ACCOUNT, KEY
from tests.storage.conftest import put_blobs


def _secrets(azurite, token: str) -> list[str]:
    sig = next(part for part in token.split("&") if part.startswith("sig="))
    return [KEY, azurite.connection_string, token, sig.removeprefix("sig="), "AccountKey="]


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret shown: {secret[:12]}…"


def test_scrub_removes_every_form():
    text = (
        "GET https://a.blob.core.windows.net/c/b.jpg?sv=1&sp=r&sig=AbC%2Bdef "
        "conn DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3cr3tKey==;EndpointSuffix=x "
        "Authorization: SharedKey a:SIGNATUREVALUE= token sig=LOOSESIG&se=1 Bearer eyJhbGciOi.payload.sig"
    )
    clean = scrub_secrets(text)
    for secret in ("AbC%2Bdef", "S3cr3tKey", "SIGNATUREVALUE", "LOOSESIG", "eyJhbGciOi"):
        assert secret not in clean
    assert "https://a.blob.core.windows.net/c/b.jpg" in clean  # the useful part stays


def test_a_known_secret_is_removed_wherever_it_appears():
    settings = parse_connection_string("AccountName=acct;AccountKey=QW5vdGhlclNlY3JldEtleVZhbHVl")
    assert "QW5vdGhlclNlY3JldEtleVZhbHVl" not in scrub_secrets("key was QW5vdGhlclNlY3JldEtleVZhbHVl!")
    assert "QW5vdGhlclNlY3JldEtleVZhbHVl" not in repr(settings)


async def test_nothing_secret_in_any_output(azurite, azurite_service, azurite_container, caplog):
    caplog.set_level(logging.DEBUG)  # the Azure SDK's own request logging included
    await put_blobs(azurite_service, azurite_container, {"p/a.jpg": b"\xff\xd8a"})
    token = generate_container_sas(
        ACCOUNT, azurite_container, account_key=KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    secrets = _secrets(azurite, token)
    env = azurite.environ()
    shown: list[str] = []

    settings = resolve_settings(parse_location(f"az://{azurite_container}/p"), env)
    sas_location = parse_location(f"{azurite.url(azurite_container, 'p')}?{token}")
    sas_settings = resolve_settings(sas_location, {})
    shown += [repr(settings), str(settings), repr(sas_settings), str(sas_location), repr(sas_location)]

    for where, environ in ((f"az://{azurite_container}/p", env), (f"{azurite.url(azurite_container, 'p')}?{token}", {})):
        async with open_source(where, environ=environ) as source:
            shown += [repr(source.location), str(source.location), repr(source.stats.snapshot())]
            (entry,) = [e async for e in source.entries()]
            url = await source.read_url(entry)
            shown += [repr(url), str(url), url.public_url, repr(entry)]

    errors: list[StorageError] = []
    wrong = StorageSettings(ACCOUNT, azurite.account_url, "sas", "AZURE_STORAGE_SAS_TOKEN", sas_token=token.replace("sp=rl", "sp=w"))
    for attempt in (
        lambda: open_source(f"az://{azurite_container}x/p", environ=env),  # container not found
        lambda: open_source(f"az://{azurite_container}/p", settings=wrong),  # tampered token: 403
        lambda: open_sink(f"az://{azurite_container}/p", settings=wrong),
    ):
        with pytest.raises(StorageError) as info:
            async with attempt():
                pass
        errors.append(info.value)
    for error in errors:
        shown += [str(error), repr(error), str(error.args)]

    assert any(record.name.startswith("azure") for record in caplog.records)  # the SDK's logs were captured
    shown += [record.getMessage() for record in caplog.records]
    shown.append(caplog.text)
    for text in shown:
        _assert_clean(text, secrets)
    assert any("sig=" in url for url in [url.url])  # the one place a SAS lives: ReadUrl.url, handed to the service
