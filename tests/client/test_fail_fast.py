"""Fail fast on what will not heal: real sockets on 127.0.0.1 (and a host that cannot resolve).

Before the endpoint's first answer a refused port, an unknown host or a failed TLS handshake raise
EndpointUnreachableError (a ConnectionFailedError) at once, and a silent endpoint within the first-contact
window; after a first answer the retries that ride out an outage stay.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anyio
import pytest
from aiohttp import web

from cvbulk.client import (
    ConnectionFailedError,
    EndpointUnreachableError,
    RetryBudgetExhausted,
    RetryPolicy,
    Timeouts,
    TrainingClient,
)

from ._support import KEY

B = "/customvision/v3.3/training"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


class Server:
    """A small plain-http aiohttp server on 127.0.0.1."""

    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app)
        self.port = 0

    async def __aenter__(self) -> Server:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _projects_app(answer: list) -> web.Application:
    async def projects(request: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get(B + "/projects", projects)
    return app


async def _fails_fast(endpoint: str, within: float = 5.0, **client_kw) -> EndpointUnreachableError:
    started = time.monotonic()
    with anyio.fail_after(within + 5):
        async with TrainingClient(endpoint, KEY, **client_kw) as client:
            with pytest.raises(EndpointUnreachableError) as info:
                await client.get_projects()
    elapsed = time.monotonic() - started
    assert elapsed < within, elapsed
    err = info.value
    assert isinstance(err, ConnectionFailedError) and not err.retryable
    text = str(err)
    assert "\n" not in text and KEY not in text and KEY not in repr(err)
    assert client.stats.retries == 0 or isinstance(err, EndpointUnreachableError)
    return err


async def test_refused_port_is_fatal_at_once():
    port = closed_port()
    err = await _fails_fast(f"http://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in str(err) and "refused" in str(err)
    assert err.operation == "GetProjects"


async def test_unresolvable_host_is_fatal_at_once():
    err = await _fails_fast("https://nonexistent.invalid")
    assert "nonexistent.invalid" in str(err) and "resolve" in str(err)


async def test_https_to_a_plain_http_port_is_fatal_at_once():
    async with Server(_projects_app([])) as server:
        err = await _fails_fast(f"https://127.0.0.1:{server.port}")
    assert f"127.0.0.1:{server.port}" in str(err) and "TLS" in str(err)


async def test_silent_endpoint_gets_a_first_contact_deadline(silent_port):
    timeouts = Timeouts(first_answer=0.3, first_contact=1.0)
    retry = RetryPolicy(base=0.05, cap=0.1)
    err = await _fails_fast(f"http://127.0.0.1:{silent_port}", within=4.0, timeouts=timeouts, retry=retry)
    assert f"127.0.0.1:{silent_port} accepts connections but sent no answer" in str(err)


def test_default_deadlines_before_the_first_answer_are_seconds_not_minutes():
    timeouts = Timeouts()
    small, big = timeouts.before_contact(small_body=True), timeouts.before_contact(small_body=False)
    assert small.sock_connect == small.connect == 5.0 and small.sock_read == 5.0
    assert big.sock_read == timeouts.read  # a first 64-image batch may take the service longer
    assert timeouts.first_contact == 10.0
    after = timeouts.to_aiohttp()
    assert after.sock_connect == 10.0 and after.sock_read == 120.0


async def test_after_a_first_answer_a_refused_port_is_retried_as_an_outage():
    app = _projects_app([])
    async with Server(app) as server:
        endpoint = f"http://127.0.0.1:{server.port}"
        client = TrainingClient(endpoint, KEY, retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02))
        async with client:
            assert await client.get_projects() == []
            assert client._http.contacted
            await server.runner.cleanup()  # the service goes away mid-run
            with anyio.fail_after(10), pytest.raises(RetryBudgetExhausted) as info:
                await client.get_projects()
    last = info.value.last_error
    assert isinstance(last, ConnectionFailedError) and not isinstance(last, EndpointUnreachableError)
    assert info.value.attempts == 3 and "refused" in str(last)


async def test_the_outage_ends_and_the_run_goes_on():
    """After the first answer a refused port is waited out: the service comes back on the same port."""
    port = closed_port()
    calls = 0

    async def projects(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response([])

    def app() -> web.Application:
        a = web.Application()
        a.router.add_get(B + "/projects", projects)
        return a

    first = web.AppRunner(app())
    await first.setup()
    await web.TCPSite(first, "127.0.0.1", port).start()
    client = TrainingClient(f"http://127.0.0.1:{port}", KEY, retry=RetryPolicy(max_attempts=50, base=0.02, cap=0.05))
    second = web.AppRunner(app())
    async with client:
        await client.get_projects()
        await first.cleanup()

        async def come_back() -> None:
            await anyio.sleep(0.3)
            await second.setup()
            await web.TCPSite(second, "127.0.0.1", port).start()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(come_back)
                assert await client.get_projects() == []
    await second.cleanup()
    assert calls == 2 and client.stats.transport_errors >= 1


async def test_a_slow_first_answer_within_the_window_is_retried(silent_port):
    """A first attempt that times out is retried inside the window (a service slow for a moment)."""
    answered = anyio.Event()

    async def projects(request: web.Request) -> web.Response:
        if not answered.is_set():
            answered.set()
            await anyio.sleep(1.0)  # longer than first_answer: this attempt times out
        return web.json_response([])

    app = web.Application()
    app.router.add_get(B + "/projects", projects)
    async with Server(app) as server:
        timeouts = Timeouts(first_answer=0.3, first_contact=5.0)
        retry = RetryPolicy(base=0.01, cap=0.02)
        with anyio.fail_after(10):
            async with TrainingClient(f"http://127.0.0.1:{server.port}", KEY, timeouts=timeouts,
                                      retry=retry) as client:
                assert await client.get_projects() == []
    assert client.stats.transport_errors == 1 and client.stats.retries == 1


async def test_an_endpoint_that_hangs_up_on_every_request_is_given_up_after_the_window():
    """Accepts, reads, closes without an answer: retried inside the first-contact window, then said."""

    async def hang_up(reader, writer) -> None:
        await reader.read(1024)
        writer.close()

    server = await raw_tcp_server(hang_up)
    port = server.sockets[0].getsockname()[1]
    try:
        timeouts = Timeouts(first_answer=0.3, first_contact=0.5)
        retry = RetryPolicy(max_attempts=100, base=0.02, cap=0.05)
        err = await _fails_fast(f"http://127.0.0.1:{port}", within=4.0, timeouts=timeouts, retry=retry)
    finally:
        server.close()
    assert f"no answer from 127.0.0.1:{port}" in str(err) and "last:" in str(err)


async def test_downloads_from_another_host_are_not_judged_by_the_endpoint():
    """A refused blob host is an ordinary transport error (retried), not the endpoint being wrong."""
    async with Server(_projects_app([])) as server:
        client = TrainingClient(f"http://127.0.0.1:{server.port}", KEY,
                                retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.01))
        async with client:
            with anyio.fail_after(10), pytest.raises(RetryBudgetExhausted) as info:
                await client.download(f"http://127.0.0.1:{closed_port()}/blob/x.jpg?sig=abc")
    assert not isinstance(info.value.last_error, EndpointUnreachableError)
    assert "sig=abc" not in str(info.value)


async def raw_tcp_server(handler):
    import asyncio

    return await asyncio.start_server(handler, "127.0.0.1", 0)


@pytest.fixture
def self_signed(tmp_path):
    """A certificate no one trusts, made with the openssl command (skipped where there is none)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


async def test_an_untrusted_certificate_is_fatal_at_once(self_signed):
    import ssl

    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(_projects_app([]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        err = await _fails_fast(f"https://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    assert f"the TLS certificate of 127.0.0.1:{port} is not trusted (self-signed certificate)" in str(err)
