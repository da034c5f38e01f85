from __future__ import annotations

from pathlib import Path

import pytest

from cvbulk.storage import Location, LocationError, parse_location


def test_az_url_with_and_without_prefix():
    assert parse_location("az://images/2026/flowers") == Location(kind="blob", container="images", prefix="2026/flowers/")
    assert parse_location("az://images") == Location(kind="blob", container="images", prefix="")
    assert parse_location("az://images/").prefix == ""
    assert str(parse_location("az://images/a/b/")) == "az://images/a/b/"


def test_https_account_url():
    loc = parse_location("https://myacct.blob.core.windows.net/imgs/set%201/x")
    assert (loc.account_name, loc.account_url, loc.container, loc.prefix) == (
        "myacct",
        "https://myacct.blob.core.windows.net",
        "imgs",
        "set 1/x/",
    )
    sovereign = parse_location("https://acct2.blob.core.chinacloudapi.cn/c01")
    assert sovereign.account_url == "https://acct2.blob.core.chinacloudapi.cn"


def test_azurite_path_style_url():
    loc = parse_location("http://127.0.0.1:10000/devstoreaccount1/images/Hemlock")
    assert loc.account_url == "http://127.0.0.1:10000/devstoreaccount1"
    assert (loc.account_name, loc.container, loc.prefix) == ("devstoreaccount1", "images", "Hemlock/")
    assert parse_location("http://localhost:10000/devstoreaccount1/images").account_name == "devstoreaccount1"


def test_sas_in_url_is_kept_but_never_shown():
    loc = parse_location("https://acct.blob.core.windows.net/imgs/p?sv=2024-01-01&sp=rl&sig=SECRETSIG123")
    assert loc.sas_token == "sv=2024-01-01&sp=rl&sig=SECRETSIG123"
    assert "SECRETSIG123" not in repr(loc) and "SECRETSIG123" not in str(loc)


def test_local_paths(tmp_path):
    assert parse_location(str(tmp_path)) == Location(kind="local", path=tmp_path)
    assert parse_location("images/x").path == Path("images/x")
    assert parse_location(f"file://{tmp_path}").path == tmp_path
    assert not parse_location("./data").is_blob


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty location"),
        ("az://", "no container"),
        ("az://Images/x", "bad container name"),
        ("az://ab/x", "bad container name"),
        ("az://a--b/x", "bad container name"),
        ("az://imgs/a/../b", "'..'"),
        ("az://imgs/a//b", "empty"),
        ("s3://bucket/key", "unsupported location scheme"),
        ("https://example.com/imgs/x", "not a blob storage URL"),
        ("https://UPPER_case.blob.core.windows.net/imgs", "bad account name"),
        ("http://127.0.0.1:10000", "no account"),
        ("https://user:pw@acct.blob.core.windows.net/imgs", "credentials in the URL"),
    ],
)
def test_malformed_locations_are_one_line_errors(text, words):
    with pytest.raises(LocationError) as info:
        parse_location(text)
    message = str(info.value)
    assert words in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_malformed_url_error_does_not_echo_a_sas():
    with pytest.raises(LocationError) as info:
        parse_location("https://example.com/imgs/x?sv=1&sig=TOPSECRETSIG")
    assert "TOPSECRETSIG" not in str(info.value)


@pytest.mark.parametrize("text", [
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0c2VjcmV0;EndpointSuffix=core.windows.net",
    "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2020&sig=abcdefgh",
    "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01&sig=abcdefghijk%3D",
])
def test_a_connection_string_or_sas_token_is_not_taken_for_a_folder(text):
    with pytest.raises(LocationError) as info:
        parse_location(text)
    assert "AZURE_STORAGE_CONNECTION_STRING" in str(info.value)
    assert "c2VjcmV0" not in str(info.value) and "abcdefgh" not in str(info.value)


def test_a_query_on_an_az_location_is_refused_not_dropped():
    # az:// names no account, so a SAS token there would be silently ignored (and other credentials used)
    with pytest.raises(LocationError, match="AZURE_STORAGE_SAS_TOKEN") as info:
        parse_location("az://images/flowers?sv=2022-11-02&sp=rl&sig=abcdefghijk%3D")
    assert "abcdefghijk" not in str(info.value)
