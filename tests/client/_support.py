"""Test helpers for cvbulk.client: virtual time, a request recorder over aioresponses, multipart decoding."""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import ClientResponse, MultipartWriter
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from cvbulk.client._multipart import _ImageMultipart

ENDPOINT = "https://westus.api.cognitive.microsoft.com"
TRAINING_BASE = "/customvision/v3.3/training"
PREDICTION_BASE = "/customvision/v3.0/prediction"
KEY = "k3y-Sup3r-S3cret-0123456789abcdef"


EPS = 1e-9  # float sums of 0.1 s intervals drift by ~1e-14


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The most acquisitions inside any half-open window [t, t + window) that starts at an acquisition."""
    ordered = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window - EPS:
            j += 1
        best = max(best, j - i)
    return best


class _SentRequest:
    output_size = 0


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class MockResponse(ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that aiohttp >= 3.14 requires."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


class StepClock:
    """A clock whose sleep just moves time on: enough for one task at a time (retry tests)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.now += seconds
        await anyio.lowlevel.checkpoint()


async def _settle() -> None:
    """Return once no other task or callback is ready to run (everyone waits on an event or a sleeper).

    The tests that use virtual time do no I/O, so an empty ready queue of the asyncio loop means idle.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    if ready is None:  # pragma: no cover - another loop implementation
        await anyio.wait_all_tasks_blocked()
        return
    while True:
        await anyio.lowlevel.checkpoint()
        if not ready:
            return


class VirtualClock:
    """Virtual time for many tasks: time jumps to the next sleeper's deadline once every task is blocked."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), wake))
        await wake.wait()

    async def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``main`` to its end, advancing virtual time whenever all tasks wait on it."""
        result: list[Any] = []
        async with anyio.create_task_group() as tg:
            finished = anyio.Event()

            async def runner() -> None:
                try:
                    result.append(await main())
                finally:
                    finished.set()

            tg.start_soon(runner)
            while not finished.is_set():
                await _settle()
                if finished.is_set():
                    break
                if not self._sleepers:
                    raise RuntimeError("deadlock: every task waits and nobody sleeps")
                deadline = self._sleepers[0][0]
                self.now = max(self.now, deadline)
                while self._sleepers and self._sleepers[0][0] <= self.now:
                    heapq.heappop(self._sleepers)[2].set()
        return result[0] if result else None


@dataclass
class Call:
    method: str
    url: URL
    headers: dict[str, str]
    data: Any
    json: Any = None
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def query(self) -> dict[str, str]:
        return dict(self.url.query)


async def render_multipart(writer: MultipartWriter | _ImageMultipart) -> list[dict[str, Any]]:
    """Serialise a multipart writer the way aiohttp would, then split it into its parts."""

    class Sink:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        async def write(self, chunk: bytes) -> None:
            self.chunks.append(bytes(chunk))

        async def write_eof(self, chunk: bytes = b"") -> None:
            self.chunks.append(bytes(chunk))

        def enable_compression(self, *a: Any, **k: Any) -> None:  # pragma: no cover - not used
            pass

        def enable_chunking(self) -> None:  # pragma: no cover - not used
            pass

        async def drain(self) -> None:  # pragma: no cover - not used
            pass

    sink = Sink()
    await writer.write(sink)
    raw = b"".join(sink.chunks)
    boundary = writer.boundary.encode()
    parts = []
    for chunk in raw.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        fields = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', disposition))
        parts.append({
            "name": fields.get("name"),
            "filename": fields.get("filename"),
            "content_type": headers.get("content-type"),
            "body": body[:-2] if body.endswith(b"\r\n") else body,
        })
    return parts


class Recorder:
    """Registers aioresponses answers and records what the client sent."""

    def __init__(self, mock: aioresponses) -> None:
        self.mock = mock
        self.calls: list[Call] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        payload: Any = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        repeat: bool | int = False,
        origin: str = ENDPOINT,
        clock: Callable[[], float] | None = None,
        times: list[float] | None = None,
    ) -> None:
        pattern = re.compile(re.escape(origin + path) + r"(\?.*)?$")

        async def answer(url: URL, **kwargs: Any) -> CallbackResult:
            data = kwargs.get("data")
            call = Call(method.upper(), url, dict(kwargs.get("headers") or {}), data)
            if isinstance(data, (MultipartWriter, _ImageMultipart)):
                call.parts = await render_multipart(data)
            elif isinstance(data, (bytes, bytearray)) and call.headers.get("Content-Type") == "application/json":
                call.json = json.loads(data)
            self.calls.append(call)
            if clock is not None and times is not None:
                times.append(clock())
            if payload is not None:
                return CallbackResult(status=status, payload=payload, headers=headers, response_class=MockResponse)
            return CallbackResult(
                status=status, body=body if body is not None else "", headers=headers, response_class=MockResponse
            )

        self.mock.add(pattern, method=method.upper(), callback=answer, repeat=repeat, response_class=MockResponse)

    def fail(self, method: str, path: str, exception: BaseException, *, origin: str = ENDPOINT) -> None:
        """The next matching request raises ``exception`` (a dropped connection, a timeout...)."""
        pattern = re.compile(re.escape(origin + path) + r"(\?.*)?$")
        self.mock.add(pattern, method=method.upper(), exception=exception)

    @property
    def last(self) -> Call:
        return self.calls[-1]
