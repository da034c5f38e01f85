"""The lean transport of JSON requests (client/_lean.py) against real servers on 127.0.0.1.

aiohttp servers for what a service does (keep-alive, chunked answers, gzip, errors, 429s), and raw TCP servers
for what a service may do to a connection (close it under a request, answer until close, send 100 Continue).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable

import aiohttp
import anyio
import pytest
from aiohttp import web

from cvbulk._http1 import proxied
from cvbulk.client import (
    ConnectionFailedError,
    NotFoundError,
    PredictionClient,
    RetryBudgetExhausted,
    RetryPolicy,
    TrainingClient,
)
from cvbulk.client._http import HttpCore
from cvbulk.client._lean import Headers

from ._support import KEY

pytestmark = pytest.mark.timeout(20)

B = "/customvision/v3.3/training"
P = "/customvision/v3.0/prediction"
PROJECT = "0f3c4e57-3b5a-4a8c-9d1e-2f6a7b8c9d0e"
ANSWER = {"id": "i", "project": PROJECT, "iteration": "it", "created": "2026-11-30T00:00:00Z",
          "predictions": [{"probability": 0.75, "tagId": "t1", "tagName": "apple"}]}


def fast_retry(**kwargs) -> RetryPolicy:
    return RetryPolicy(base=0.0, cap=0.0, **kwargs)


class Server:
    """An aiohttp app on a free port of 127.0.0.1."""

    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app)
        self.url = ""

    async def __aenter__(self) -> Server:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server whose handler speaks (or fails to speak) HTTP by hand; ``connections`` counts accepts."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.url = ""
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> RawServer:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            finally:
                writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request's head and body (by its Content-Length), or None when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length) if length else b""


def json_answer(doc: object, *, extra: bytes = b"") -> bytes:
    body = json.dumps(doc).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra)
            + body)


def prediction_app(seen: list[web.Request], peers: set[object]) -> web.Application:
    async def classify(request: web.Request) -> web.Response:
        seen.append(request)
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        assert await request.json() == {"url": "https://blobs.example/a.jpg?sig=s3cr3t"}
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post(P + "/{pid}/classify/iterations/{name}/url/nostore", classify)
    return app


async def test_predictions_by_url_go_lean_on_one_kept_alive_connection():
    seen: list[web.Request] = []
    peers: set[object] = set()
    async with Server(prediction_app(seen, peers)) as server, PredictionClient(server.url, KEY) as client:
        for _ in range(3):
            answer = await client.classify_image_url(PROJECT, "my model", "https://blobs.example/a.jpg?sig=s3cr3t",
                                                     application="batch run")
            assert answer.predictions[0].tag_name == "apple" and answer.predictions[0].probability == 0.75
    assert len(peers) == 1  # one connection for the three requests
    first = seen[0]
    assert first.headers["Prediction-Key"] == KEY and first.headers["User-Agent"] == "cvbulk"  # not aiohttp's
    assert first.match_info["name"] == "my model" and first.query["application"] == "batch run"
    assert client.stats.requests == 3 and client.stats.bytes_received > 0


async def test_chunked_and_gzip_answers_are_read_whole():
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        text = json.dumps([{"id": f"p{i}", "name": f"n{i}", "description": ""} for i in range(200)]).encode()
        for i in range(0, len(text), 1000):
            await resp.write(text[i : i + 1000])
        await resp.write_eof()
        return resp

    async def zipped(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps([{"id": "t", "name": "apple", "type": "Regular"}]).encode())
        return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get(B + "/projects", chunked)
    app.router.add_get(B + "/projects/{pid}/tags", zipped)
    async with Server(app) as server, TrainingClient(server.url, KEY) as client:
        projects = await client.get_projects()
        tags = await client.get_tags(PROJECT)
    assert [p.id for p in projects] == [f"p{i}" for i in range(200)]
    assert [t.name for t in tags] == ["apple"]


async def test_error_answers_map_as_on_aiohttp():
    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"code": "NotFound", "message": f"no project (key {KEY})"}, status=404)

    app = web.Application()
    app.router.add_get(B + "/projects/{pid}", missing)
    async with Server(app) as server, TrainingClient(server.url, KEY) as client:
        with pytest.raises(NotFoundError) as info:
            await client.get_project(PROJECT)
    assert info.value.code == "NotFound" and KEY not in str(info.value) and info.value.status == 404


async def test_a_429_waits_its_retry_after_then_succeeds():
    calls = 0

    async def throttled(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response({"code": "429", "message": "Rate limit is exceeded."}, status=429,
                                     headers={"Retry-After": "0"})
        return web.json_response([])

    app = web.Application()
    app.router.add_get(B + "/projects", throttled)
    async with Server(app) as server, TrainingClient(server.url, KEY, retry=fast_retry()) as client:
        assert await client.get_projects() == []
    assert calls == 2 and client.stats.throttled == 1 and client.stats.retries == 1


async def test_a_kept_alive_connection_closed_under_a_request_is_replaced_at_once_when_safe():
    """The server takes a request on a kept-alive connection and closes it without an answer (its idle timeout
    struck): a GET, or a prediction that stores nothing, is written again on a new connection, with no retry
    wait; another POST goes through the retry policy (it may have been done)."""

    async def answer_once_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request is None:
            return
        doc = ANSWER if b"/classify/" in request[0] else []
        writer.write(json_answer(doc))
        await writer.drain()
        await read_request(reader)  # the next request on this connection: closed unanswered

    async with RawServer(answer_once_per_connection) as server:
        async with TrainingClient(server.url, KEY, retry=fast_retry(max_attempts=3)) as training:
            assert await training.get_projects() == []
            assert await training.get_projects() == []  # reused connection closed under it: a new one
            assert training.stats.retries == 0 and server.connections == 2
        async with PredictionClient(server.url, KEY, retry=fast_retry(max_attempts=3)) as prediction:
            for _ in range(2):
                await prediction.classify_image_url(PROJECT, "m", "https://blobs.example/a.jpg?sig=s3cr3t")
            assert prediction.stats.retries == 0 and server.connections == 4
            await prediction.classify_image_url(PROJECT, "m", "https://b/a.jpg", store=True)  # a POST that stores
            assert prediction.stats.retries == 1 and prediction.stats.transport_errors == 1


async def test_an_answer_that_ends_with_the_connection_and_an_interim_100():
    async def old_style(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[]")
            await writer.drain()
            return  # the body ends with the connection

    async with RawServer(old_style) as server, TrainingClient(server.url, KEY) as client:
        assert await client.get_projects() == []
        assert await client.get_projects() == []
    assert server.connections == 2  # a body read until close leaves no connection to reuse


async def test_garbage_for_an_answer_is_a_connection_failure_without_the_key():
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    async with RawServer(garbage) as server, TrainingClient(server.url, KEY, retry=fast_retry(max_attempts=2)) as c:
        c._http.contacted = True  # past the first contact: an ordinary transport error, retried
        with pytest.raises(RetryBudgetExhausted) as info:
            await c.get_projects()
    last = info.value.last_error
    assert isinstance(last, ConnectionFailedError) and "not an HTTP answer" in str(last)
    assert KEY not in str(info.value) and KEY not in repr(last)


async def test_a_cancelled_request_closes_its_connection_and_the_next_one_works():
    release = anyio.Event()

    async def slow_then_quick(request: web.Request) -> web.Response:
        if not release.is_set():
            await release.wait()
        return web.json_response([])

    app = web.Application()
    app.router.add_get(B + "/projects", slow_then_quick)
    async with Server(app) as server, TrainingClient(server.url, KEY) as client:
        with anyio.move_on_after(0.2) as scope:
            await client.get_projects()
        assert scope.cancelled_caught
        release.set()
        assert client._http._lean is not None and not client._http._lean._idle  # the cut connection was dropped
        assert await client.get_projects() == []


async def test_what_still_goes_through_aiohttp(monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    plain = HttpCore("https://westus.api.cognitive.microsoft.com", KEY, service_path="/x", key_header="K")
    assert plain._lean_ok
    async with aiohttp.ClientSession() as session:
        lent = HttpCore("https://westus.api.cognitive.microsoft.com", KEY, service_path="/x", key_header="K",
                        session=session)
        assert not lent._lean_ok  # a lent session may carry its own proxy, TLS and tracing
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxied("https://westus.api.cognitive.microsoft.com/x")
    proxied_core = HttpCore("https://westus.api.cognitive.microsoft.com", KEY, service_path="/x", key_header="K")
    assert not proxied_core._lean_ok  # aiohttp, as before (it reads no proxy from the environment)
    monkeypatch.setenv("NO_PROXY", "westus.api.cognitive.microsoft.com")
    assert not proxied("https://westus.api.cognitive.microsoft.com/x")


def test_headers_are_read_in_any_case_and_only_when_asked():
    headers = Headers.lazy(b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nX-A: 1\r\nx-a: 2")
    assert headers._map is None
    assert headers.get("retry-after") == "7" and headers["RETRY-AFTER"] == "7" and "Retry-After" in headers
    assert headers.get("x-a") == "1, 2" and len(headers) == 2 and headers.get("missing") is None


async def test_a_path_left_unquoted_is_quoted_on_the_wire():
    seen: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/x/{rest:.*}", any_path)
    async with Server(app) as server:
        core = HttpCore(server.url, KEY, service_path="/x", key_header="K")
        try:
            assert await core.call("Get", "GET", "/a b/é") == {}
        finally:
            await core.aclose()
    assert seen == ["/x/a b/é"]


async def test_timeouts_are_kept_by_the_pools_watchdog():
    """One timer for the pool, not one per request: a silent answer times out after ``read``, an answer that
    trickles in (each byte inside ``read``) does not, and ``total`` bounds the whole attempt."""
    from cvbulk.client._lean import LeanPool, LeanTimeout, request_bytes

    body = json.dumps(ANSWER).encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (got := await read_request(reader)) is not None:
            head = got[0]
            if b"/silent" in head:
                await asyncio.sleep(5)
                return
            for k in range(0, len(answer), len(answer) // 6 + 1):  # trickled, 0.08 s between pieces
                writer.write(answer[k : k + len(answer) // 6 + 1])
                await writer.drain()
                await asyncio.sleep(0.08)

    async with RawServer(handler) as server:
        pool = LeanPool(server.url)
        host = pool.host_header

        def req(path: str) -> bytes:
            return request_bytes("GET", path, host, "", None)

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(LeanTimeout, match="SocketTimeoutError"):
            await pool.request("GET", req("/silent"), connect=1, read=0.3, total=None, retry_stale=False)
        assert 0.25 <= loop.time() - started < 2
        # trickling: every piece within the read timeout, the whole well past it
        status, _, got = await pool.request("GET", req("/trickle"), connect=1, read=0.3, total=None, retry_stale=False)
        assert status == 200 and json.loads(got) == ANSWER
        with pytest.raises(LeanTimeout, match="ServerTimeoutError"):
            await pool.request("GET", req("/trickle"), connect=1, read=0.3, total=0.2, retry_stale=False)
        # many requests at once keep one timer between them
        results = await asyncio.gather(
            *(pool.request("GET", req("/trickle"), connect=1, read=0.3, total=None, retry_stale=False) for _ in range(4))
        )
        assert all(r[0] == 200 for r in results)
        pool.close()
