from __future__ import annotations

import pytest

from cvbulk.storage import (
    AZURITE_KEY,
    CredentialError,
    MissingExtraError,
    StorageSettings,
    _settings,
    parse_connection_string,
    parse_location,
    resolve_settings,
)

KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5"  # base64 of a made-up key
SAS = "sv=2024-08-04&ss=b&srt=co&sp=rl&se=2099-01-01T00:00:00Z&sig=FAKESIGNATURE0123"


def test_development_storage_shortcut():
    s = parse_connection_string("UseDevelopmentStorage=true")
    assert (s.account_name, s.account_url, s.auth) == ("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", "key")
    assert s.account_key == AZURITE_KEY


def test_full_connection_string_forms():
    s = parse_connection_string(f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net")
    assert (s.account_name, s.account_url, s.auth) == ("acct", "https://acct.blob.core.windows.net", "key")
    s = parse_connection_string(f"BlobEndpoint=http://127.0.0.1:5555/devstoreaccount1;SharedAccessSignature=?{SAS}")
    assert (s.account_name, s.account_url, s.auth, s.sas_token) == (
        "devstoreaccount1", "http://127.0.0.1:5555/devstoreaccount1", "sas", SAS
    )
    s = parse_connection_string(f"BlobEndpoint=https://acct9.blob.core.windows.net/;SharedAccessSignature={SAS}")
    assert s.account_name == "acct9"


@pytest.mark.parametrize(
    ("conn", "words"),
    [
        ("garbage", "malformed"),
        ("AccountKey=abc", "neither AccountName nor BlobEndpoint"),
        ("AccountName=acct", "neither AccountKey nor SharedAccessSignature"),
        ("AccountName=acct;AccountKey=not*base64!", "not base64"),
    ],
)
def test_bad_connection_strings(conn, words):
    with pytest.raises(CredentialError, match=words) as info:
        parse_connection_string(conn)
    assert "not*base64!" not in str(info.value)


def test_resolution_order():
    az = parse_location("az://imgs/p")
    conn = f"AccountName=acct;AccountKey={KEY}"
    assert resolve_settings(az, {"AZURE_STORAGE_CONNECTION_STRING": conn}).origin == "AZURE_STORAGE_CONNECTION_STRING"
    s = resolve_settings(az, {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_KEY": KEY})
    assert (s.auth, s.account_url, s.origin) == ("key", "https://acct.blob.core.windows.net", "AZURE_STORAGE_KEY")
    s = resolve_settings(az, {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_SAS_TOKEN": "?" + SAS})
    assert (s.auth, s.sas_token) == ("sas", SAS)
    https = parse_location("https://acct.blob.core.windows.net/imgs")
    assert resolve_settings(https, {"AZURE_STORAGE_KEY": KEY}).account_name == "acct"
    with_sas = parse_location(f"https://acct.blob.core.windows.net/imgs?{SAS}")
    s = resolve_settings(with_sas, {"AZURE_STORAGE_CONNECTION_STRING": conn})
    assert (s.auth, s.origin) == ("sas", "the location URL")


def test_location_url_overrides_the_endpoint_of_the_connection_string():
    loc = parse_location("http://127.0.0.1:7777/devstoreaccount1/imgs")
    s = resolve_settings(loc, {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert s.account_url == "http://127.0.0.1:7777/devstoreaccount1"


def test_contradictions_and_missing_account():
    conn = f"AccountName=other;AccountKey={KEY}"
    with pytest.raises(CredentialError, match="for account 'other'"):
        resolve_settings(parse_location("https://acct.blob.core.windows.net/imgs"), {"AZURE_STORAGE_CONNECTION_STRING": conn})
    with pytest.raises(CredentialError, match="AZURE_STORAGE_ACCOUNT is 'other'"):
        resolve_settings(parse_location("https://acct.blob.core.windows.net/imgs"), {"AZURE_STORAGE_ACCOUNT": "other"})
    with pytest.raises(CredentialError, match="does not name a storage account"):
        resolve_settings(parse_location("az://imgs"), {})


def test_identity_needs_the_optional_extra(monkeypatch):
    monkeypatch.setattr(_settings, "_identity_installed", lambda: False)
    with pytest.raises(MissingExtraError) as info:
        resolve_settings(parse_location("az://imgs"), {"AZURE_STORAGE_ACCOUNT": "acct"})
    assert "pip install 'cvbulk[identity]'" in str(info.value)
    monkeypatch.setattr(_settings, "_identity_installed", lambda: True)
    s = resolve_settings(parse_location("az://imgs"), {"AZURE_STORAGE_ACCOUNT": "acct"})
    assert (s.auth, s.origin) == ("identity", "DefaultAzureCredential")


def test_repr_and_equality_never_involve_secrets():
    a = StorageSettings("acct", "https://acct.blob.core.windows.net", "key", "AZURE_STORAGE_KEY", account_key=KEY)
    b = StorageSettings("acct", "https://acct.blob.core.windows.net", "sas", "x", sas_token=SAS)
    for shown in (repr(a), str(a), repr(b), str(b), f"{a}", f"{b!r}"):
        assert KEY not in shown and "FAKESIGNATURE" not in shown and "sig=" not in shown
    assert "acct" in repr(a)


def test_identity_over_plain_http_is_a_clear_line_not_a_value_error(monkeypatch):
    # the SDK refuses a token over http ("Token credential is only supported with HTTPS"): Azurite without a key
    monkeypatch.setattr(_settings, "_identity_installed", lambda: True)
    with pytest.raises(CredentialError) as info:
        resolve_settings(parse_location("http://127.0.0.1:10000/devstoreaccount1/imgs/p"), {})
    assert "https" in str(info.value) and "UseDevelopmentStorage=true" in str(info.value)
