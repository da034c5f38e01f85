"""``RangedReader``: the header check's plain HTTP/1.1 ranged GETs, against a loopback server that answers as told."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import anyio
import pytest

from cvbulk.storage import ReadUrl, StorageEntry, StorageUnreachableError, _blob_source
from cvbulk.storage._ranged import RangedReader, RangedReadError

BODY = b"0123456789" * 10


class Server:
    """Answers each request by its path: /len (Content-Length), /chunked, /close (Connection: close),
    /drop (closes after answering, without saying so), /silent (never answers), /flaky (503, then 206)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.flaky = 1

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                path = head.split(b" ")[1].split(b"?")[0]
                rng = next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"range:"))
                start, stop = (int(x) for x in rng.split(b"=")[1].split(b"-"))
                part = BODY[start : stop + 1]
                if path == b"/silent":
                    await asyncio.sleep(10)
                if path == b"/flaky" and self.flaky > 0:
                    self.flaky -= 1
                    writer.write(b"HTTP/1.1 503 Server Busy\r\nContent-Length: 4\r\n\r\nbusy")
                elif path == b"/chunked":
                    half = len(part) // 2
                    writer.write(b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + b"%x\r\n" % half + part[:half] + b"\r\n"
                                 + b"%x;ext=1\r\n" % (len(part) - half) + part[half:] + b"\r\n0\r\n\r\n")
                else:
                    close = b"Connection: close\r\n" if path == b"/close" else b""
                    writer.write(b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n%s\r\n" % (len(part), close) + part)
                await writer.drain()
                if path in (b"/close", b"/drop"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server():
    srv = Server()
    tcp = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    srv.base = f"http://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"
    yield srv
    tcp.close()


async def test_reads_ranges_on_one_kept_alive_connection(server):
    reader = RangedReader(connect_timeout=2, read_timeout=2)
    try:
        for start in (0, 10, 95):
            status, data = await reader.get(f"{server.base}/len?sv=1&sig=a%2Fb", start, start + 8, '"0x1"')
            assert status == 206 and data == BODY[start : start + 8]
        status, data = await reader.get(f"{server.base}/chunked?sig=x", 3, 40, '"0x1"')
        assert status == 206 and data == BODY[3:40]
    finally:
        await reader.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"GET /len?sv=1&sig=a%2Fb HTTP/1.1\r\n")  # the signed query goes as it is
    assert b"Range: bytes=0-7\r\n" in first and b'If-Match: "0x1"\r\n' in first


async def test_closed_connections_are_not_reused(server):
    reader = RangedReader(connect_timeout=2, read_timeout=2)
    try:
        assert (await reader.get(f"{server.base}/close", 0, 5, "e"))[1] == BODY[:5]
        assert (await reader.get(f"{server.base}/drop", 0, 5, "e"))[1] == BODY[:5]
        await anyio.sleep(0.05)  # the server's close reaches the idle connection
        assert (await reader.get(f"{server.base}/len", 0, 5, "e"))[1] == BODY[:5]
    finally:
        await reader.aclose()
    assert server.connections == 3


async def test_no_answer_is_a_timeout_and_a_bad_url_an_error(server):
    reader = RangedReader(connect_timeout=2, read_timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            await reader.get(f"{server.base}/silent", 0, 5, "e")
        with pytest.raises(RangedReadError):
            await reader.get("ftp://127.0.0.1/x", 0, 5, "e")
    finally:
        await reader.aclose()


async def test_a_blob_read_tries_a_transient_failure_again(server, azurite, environ, monkeypatch):
    from cvbulk.storage import open_source

    monkeypatch.setattr(_blob_source, "_RETRY_WAIT", 0.01)
    entry = StorageEntry("x.jpg", len(BODY), '"0x1"')
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    async with open_source(f"{azurite.account_url}/nocheck", environ=environ, check=False) as source:
        assert await source.read_head_at(entry, ReadUrl(f"{server.base}/flaky?sig=s", later), 16) == BODY[:16]
        assert source.stats.requests == 2 and source.stats.header_bytes == 16
        with pytest.raises(StorageUnreachableError) as info:
            await source.read_head_at(entry, ReadUrl("http://127.0.0.1:9/x.jpg?sig=secret", later), 16)
    assert "secret" not in str(info.value)


async def test_many_reads_go_pipelined_on_a_few_connections_and_come_back_in_order(server):
    reader = RangedReader(connect_timeout=2, read_timeout=2, depth=8)
    reads = [(f"{server.base}/len?sig=s{k}", k % 90, k % 90 + 7, '"0x1"') for k in range(20)]
    reads[5] = (f"{server.base}/chunked?sig=c", 2, 30, '"0x1"')
    reads[11] = ("ftp://127.0.0.1/x", 0, 5, "e")  # one read's failure is that read's answer, not the call's
    try:
        answers = await reader.get_many(reads)
        again = await reader.get_many(reads[:8])  # the connections are kept and reused
    finally:
        await reader.aclose()
    for k, answer in enumerate(answers):
        if k == 11:
            assert isinstance(answer, RangedReadError)
        else:
            _, start, stop, _ = reads[k]
            assert answer == (206, BODY[start:stop]), k
    assert again == answers[:8]
    assert server.connections == 3  # 20 reads, 8 deep: three connections, each written once per call
    assert len(server.requests) == 19 + 8


async def test_a_server_that_drops_pipelined_requests_costs_connections_not_answers(server):
    reader = RangedReader(connect_timeout=2, read_timeout=2, depth=8)
    reads = [(f"{server.base}/drop?n={k}", k, k + 5, "e") for k in range(4)]
    try:
        first = await reader.get_many(reads)
        second = await reader.get_many(reads)  # from now on this host is read one request at a time
    finally:
        await reader.aclose()
    assert first == second == [(206, BODY[k : k + 5]) for k in range(4)]
    assert server.connections == 8  # one answer per connection: the server closes after each
    assert len(server.requests) == 8  # the second call sent each once: nothing left unanswered to send again


async def test_a_silent_connection_fails_its_reads_with_a_timeout_and_the_others_still_answer(server):
    reader = RangedReader(connect_timeout=2, read_timeout=0.2, depth=2)
    reads = [(f"{server.base}/len", 0, 5, "e"), (f"{server.base}/len", 5, 9, "e"), (f"{server.base}/silent", 0, 5, "e")]
    try:
        answers = await reader.get_many(reads)
    finally:
        await reader.aclose()
    assert answers[:2] == [(206, BODY[:5]), (206, BODY[5:9])]
    assert isinstance(answers[2], TimeoutError)


async def test_storage_that_stops_answering_costs_one_read_of_retries_not_one_per_image(azurite, environ, monkeypatch):
    # a group of first reads whose account went away: one read tries again (its retries), the others are told at
    # once; before, each waited its own retries in turn (a run of 1,500 images took 4 minutes to give up)
    from cvbulk.storage import open_source

    monkeypatch.setattr(_blob_source, "_RETRY_WAIT", 0.01)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    reads = [(StorageEntry(f"{k}.jpg", 100, '"0x1"'), ReadUrl(f"http://127.0.0.1:9/{k}.jpg?sig=s", later))
             for k in range(12)]
    async with open_source(f"{azurite.account_url}/nocheck", environ=environ, check=False) as source:
        answers = await source.read_heads_at(reads, 16)
        assert all(isinstance(a, StorageUnreachableError) for a in answers)
        assert source.stats.requests <= len(reads) + 1 + source.timeouts.retries  # the pipelined try + one's retries
        again = await source.read_heads_at(reads[:3], 16)  # the next group: still no retries while it is down
        assert all(isinstance(a, StorageUnreachableError) for a in again)
        assert source.stats.requests <= len(reads) + 1 + source.timeouts.retries + 3 + 1
