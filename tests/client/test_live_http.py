"""The client against small real aiohttp servers on 127.0.0.1: dropped connections, timeouts, downloads."""

from __future__ import annotations

import json

import aiohttp
import anyio
import pytest
from aiohttp import web

from cvbulk.client import (
    ClientStats,
    NotFoundError,
    RequestTimeoutError,
    RetryBudgetExhausted,
    RetryPolicy,
    Timeouts,
    TrainingClient,
)

from ._support import KEY

B = "/customvision/v3.3/training"


class Server:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner = web.AppRunner(app)
        self.url = ""

    async def __aenter__(self) -> "Server":
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


def fast_retry(**kwargs) -> RetryPolicy:
    return RetryPolicy(base=0.0, cap=0.0, **kwargs)


async def test_dropped_connection_is_retried_with_the_whole_multipart_body():
    seen: list[list[tuple[str | None, str | None, int]]] = []
    attempts = 0

    async def create(request: web.Request) -> web.StreamResponse:
        nonlocal attempts
        attempts += 1
        assert request.headers["Training-Key"] == KEY
        parts = []
        reader = await request.multipart()
        async for part in reader:
            parts.append((part.name, part.filename, len(await part.read())))
        seen.append(parts)
        if attempts == 1:
            request.transport.close()  # the service went away mid-request: no answer at all
            return web.Response()
        images = [{"sourceUrl": f'"{name}"', "status": "OK"} for _, name, _ in parts]
        return web.json_response({"isBatchSuccessful": True, "images": images})

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post(B + "/projects/{pid}/images", create)
    images = [(f"img {n}.jpg", bytes([n]) * 300_000) for n in range(8)]
    with anyio.fail_after(10):
        async with Server(app) as server, TrainingClient(server.url, KEY, retry=fast_retry()) as client:
            summary = await client.create_images_from_data("p", images, tag_ids=["t1"])
    assert attempts == 2 and seen[0] == seen[1]
    assert seen[1] == [("imageData", name, len(data)) for name, data in images]
    assert [r.source_name for r in summary.images] == [name for name, _ in images]
    snap = client.stats.snapshot()
    assert snap["requests"] == 2 and snap["retries"] == 1 and snap["transport_errors"] == 1
    assert snap["bytes_sent"] > 2 * 8 * 300_000 and snap["bytes_received"] > 0
    assert snap["latency_ms"]["max"] > 0


async def test_read_timeout_is_retried_then_gives_up():
    release = anyio.Event()
    calls = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await release.wait()
        return web.json_response([])

    app = web.Application()
    app.router.add_get(B + "/projects", slow)
    with anyio.fail_after(10):
        async with Server(app) as server:
            client = TrainingClient(server.url, KEY, timeouts=Timeouts(read=0.2), retry=fast_retry(max_attempts=2))
            async with client:
                with pytest.raises(RetryBudgetExhausted) as info:
                    await client.get_projects()
            release.set()
    assert isinstance(info.value.last_error, RequestTimeoutError) and calls == 2
    assert client.stats.transport_errors == 2


async def test_download_sends_the_key_only_to_the_endpoint_origin():
    got: dict[str, str | None] = {}

    def blob(label: str):
        async def handler(request: web.Request) -> web.Response:
            got[label] = request.headers.get("Training-Key")
            return web.Response(body=b"\x89PNG-" + label.encode(), content_type="image/png")
        return handler

    own, other = web.Application(), web.Application()
    own.router.add_get("/img/{name}", blob("own"))
    other.router.add_get("/img/{name}", blob("other"))

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"code": "NotFound", "message": "gone"}, status=404)

    own.router.add_get("/missing", missing)
    with anyio.fail_after(10):
        async with Server(own) as a, Server(other) as b, TrainingClient(a.url, KEY) as client:
            assert await client.download(f"{a.url}/img/x.png") == b"\x89PNG-own"
            assert await client.download("/img/y.png") == b"\x89PNG-own"  # relative: the endpoint's
            assert await client.download(f"{b.url}/img/z.png?sig=abc") == b"\x89PNG-other"
            with pytest.raises(NotFoundError):
                await client.download(f"{a.url}/missing")
    assert got == {"own": KEY, "other": None}


async def test_injected_session_is_shared_and_left_open():
    async def projects(request: web.Request) -> web.Response:
        return web.json_response([{"id": "p", "name": "n", "description": ""}])

    app = web.Application()
    app.router.add_get(B + "/projects", projects)
    stats = ClientStats()
    with anyio.fail_after(10):
        async with Server(app) as server, aiohttp.ClientSession() as session:
            async with TrainingClient(server.url, KEY, session=session, stats=stats) as one:
                assert (await one.get_projects())[0].id == "p"
            assert not session.closed
            async with TrainingClient(server.url, KEY, session=session, stats=stats) as two:
                await two.get_projects()
            assert not session.closed
    assert stats.requests == 2  # one ClientStats can sum several clients


async def test_owned_session_is_closed_and_reopened_on_reuse():
    async def projects(request: web.Request) -> web.Response:
        return web.Response(body=json.dumps([]), content_type="application/json")

    app = web.Application()
    app.router.add_get(B + "/projects", projects)
    with anyio.fail_after(10):
        async with Server(app) as server:
            client = TrainingClient(server.url, KEY, max_connections=4)
            async with client:
                session = client._http.session()
                assert session.connector.limit == 4
                await client.get_projects()
            assert session.closed
            assert await client.get_projects() == []  # used again without `async with`: a new pool
            await client.aclose()
