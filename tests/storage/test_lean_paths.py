"""The lean per-blob paths (listing parse, blob URLs, SAS from a template) give what the SDK gives (Azurite)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import BlobSasPermissions, UserDelegationKey, generate_blob_sas

from cvbulk.storage import open_source
from cvbulk.storage._listing import parse_page
from cvbulk.storage._sas import _SKEW, _Template
from tests._azurite import KEY
from tests.storage.conftest import put_blobs

NAMES = ["a b/c.jpg", "Tag/ü ñ#?%.jpg", "x/y z+&=.png", "dir/&<>'\".jpg", "plain.jpg", "cvbulk-sas-template"]


def _delegation_key() -> UserDelegationKey:
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = "oid", "tid"
    key.signed_start, key.signed_expiry = "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"
    key.signed_service, key.signed_version, key.value = "b", "2025-01-05", KEY
    return key


@pytest.mark.parametrize("https", [False, True])
@pytest.mark.parametrize("kind", ["account key", "user delegation key"])
def test_template_sas_is_the_sdks_token(kind, https):
    key = KEY if kind == "account key" else _delegation_key()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    expiry = now + timedelta(hours=1)
    template = _Template.make("acct", "cont", key, now, expiry, https)
    assert template._key is not None  # the fast path, not the per-name fallback
    credential = {"account_key": key} if isinstance(key, str) else {"user_delegation_key": key}
    for name in NAMES:
        expected = generate_blob_sas("acct", "cont", name, permission=BlobSasPermissions(read=True), start=now - _SKEW,
                                     expiry=expiry, protocol="https" if https else None, **credential)
        assert template.token(name) == expected


@pytest.mark.parametrize("size", [16, 64, 65, 200])  # a key shorter than, as long as, longer than a block
def test_hmac_from_padded_key_blocks_equals_the_standard_library(size):
    import hmac
    import os

    from cvbulk.storage._sas import hmac_pads

    key = os.urandom(size)
    for message in (b"", b"r\n2026-11-30T00:00:00Z\n/blob/acct/cont/a b.jpg", os.urandom(300)):
        inner, outer = (p.copy() for p in hmac_pads(key))
        inner.update(message)
        outer.update(inner.digest())
        assert outer.digest() == hmac.digest(key, message, "sha256")


def test_list_page_parse_reads_encoded_names_and_skips_folder_placeholders():
    body = b"""<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>
      <Blob><Name>pre/Tag/a.jpg</Name><Properties><Last-Modified>Mon, 30 Nov 2026 18:00:00 GMT</Last-Modified>
        <Etag>0x8D1</Etag><Content-Length>123</Content-Length><Content-Type>image/jpeg</Content-Type></Properties></Blob>
      <Blob><Name Encoded="true">pre/Tag/%EF%BF%BEodd.jpg</Name><Properties><Etag>"0x8D2"</Etag>
        <Content-Length>7</Content-Length></Properties></Blob>
      <Blob><Name>pre/Tag/</Name><Properties><Etag>0x8D3</Etag><Content-Length>0</Content-Length></Properties></Blob>
    </Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"""
    entries, marker = parse_page(body, "pre/")
    assert marker == "2!abc"
    assert [(e.name, e.size, e.etag) for e in entries] == [("Tag/a.jpg", 123, '"0x8D1"'), ("Tag/\ufffeodd.jpg", 7, '"0x8D2"')]
    assert entries[0].last_modified == datetime(2026, 11, 30, 18, tzinfo=timezone.utc)
    assert entries[0].content_type == "image/jpeg" and entries[1].content_type is None
    assert parse_page(b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>", "") == ([], None)


@pytest.mark.parametrize("typed", ["every blob", "some blobs"])  # column by column / blob by blob
def test_the_quick_page_reading_agrees_with_elementtree(typed):
    from cvbulk.storage._listing import _Dates, _parse_page_tree

    blob = (
        "<Blob><Name>{name}</Name><Properties><Creation-Time>Mon, 30 Nov 2026 18:00:00 GMT</Creation-Time>"
        "<Last-Modified>Mon, 30 Nov 2026 18:00:0{k} GMT</Last-Modified><Etag>0x8D{k}</Etag>"
        "<Content-Length>{k}00</Content-Length>{ctype}<Content-Encoding /><Content-MD5 />"
        "<BlobType>BlockBlob</BlobType><LeaseStatus>unlocked</LeaseStatus></Properties><OrMetadata /></Blob>"
    )
    names = ["Tag/plain.jpg", "Tag/a &amp; b.jpg", "Tag/&lt;x&gt; &quot;q&quot; &apos;s&apos;.png", "Tag/&amp;lt;.jpg",
             "Tag/ünïcødé 写真.jpg", "Tag/sub/", "Tag/space .jpg"]
    body = ('<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><Prefix>Tag/</Prefix>'
            "<MaxResults>5000</MaxResults><Blobs>"
            + "".join(blob.format(name=n, k=k, ctype="<Content-Type>image/jpeg</Content-Type>" if k % 2 or typed == "every blob" else "<Content-Type />")
                      for k, n in enumerate(names))
            + "</Blobs><NextMarker>2!a&amp;b</NextMarker></EnumerationResults>").encode()
    quick = parse_page(body, "Tag/")
    assert quick == _parse_page_tree(body, "Tag/", _Dates())
    assert [e.name for e in quick[0]] == ["plain.jpg", "a & b.jpg", "<x> \"q\" 's'.png", "&lt;.jpg", "ünïcødé 写真.jpg", "space .jpg"]
    assert quick[1] == "2!a&b"
    for unusual in (b"<![CDATA[x]]>", b"&#233;"):  # read by ElementTree: the same entries
        odd = body.replace(b"plain.jpg", b"plain" + unusual.replace(b"x", b"y") + b".jpg")
        assert parse_page(odd, "Tag/") == _parse_page_tree(odd, "Tag/", _Dates())


async def test_lean_listing_and_urls_match_the_sdk(azurite, azurite_service, azurite_container, environ):
    blobs = {f"pre/{name}": name.encode() for name in NAMES} | {"pre/folder/": b"", "other/z.jpg": b"z"}
    await put_blobs(azurite_service, azurite_container, blobs)
    container = azurite_service.get_container_client(azurite_container)
    sdk = {b.name: b async for b in container.list_blobs(name_starts_with="pre/")}
    async with open_source(f"az://{azurite_container}/pre", environ=environ) as source:
        pages = [page async for page in source.pages(page_size=2)]
        entries = [e for page in pages for e in page]
        assert len(pages) >= 3 and source.stats.listed == len(NAMES)
        assert sorted(e.name for e in entries) == sorted(NAMES)
        for e in entries:
            blob = sdk["pre/" + e.name]
            assert (e.size, e.etag.strip('"')) == (blob.size, blob.etag.strip('"'))
            assert e.last_modified == blob.last_modified
            assert source.blob_url("pre/" + e.name) == container.get_blob_client("pre/" + e.name).url
            # the signed URL opens the blob: name quoting and signature agree with the service
            url = await source.read_url(e)
            assert await source.read_head_at(e, url, 64) == e.name.encode()[:64]


def test_a_proxy_in_the_environment_sends_reads_through_the_sdk(monkeypatch):
    from cvbulk._http1 import proxied as _proxied

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = "https://acct.blob.core.windows.net/images"
    assert not _proxied(url)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _proxied(url)
    monkeypatch.setenv("NO_PROXY", ".core.windows.net")
    assert not _proxied(url)


async def test_reads_through_the_sdk_give_the_same_bytes(azurite, azurite_service, azurite_container, environ):
    await put_blobs(azurite_service, azurite_container, {"sdk/a.jpg": bytes(range(256)) * 40})
    async with open_source(f"az://{azurite_container}/sdk", environ=environ) as source:
        entry = [e async for page in source.pages() for e in page][0]
        url = await source.read_url(entry)
        lean = await source.read_more_at(entry, url, await source.read_head_at(entry, url, 100), 9000)
        source._lean_reads = False  # as behind a proxy
        through_sdk = await source.read_more_at(entry, url, await source.read_head_at(entry, url, 100), 9000)
        assert lean == through_sdk == (bytes(range(256)) * 40)[:9000]
