"""Azurite (Microsoft's real Azure Storage emulator) for tests: started on a free 127.0.0.1 port, stopped after.

Use it from any test folder: in that folder's ``conftest.py``::

    from tests._azurite import azurite, azurite_container  # noqa: F401  (pytest fixtures)

    async def test_x(azurite, azurite_container):
        azurite.connection_string     # full devstoreaccount1 connection string (key included: a test secret)
        azurite.account_url           # http://127.0.0.1:PORT/devstoreaccount1
        azurite_container             # a fresh, empty container name for this test
        azurite.environ()             # {"AZURE_STORAGE_CONNECTION_STRING": ...}: pass as environ= to open_source
        await put_blobs(azurite_service, azurite_container, {"a/1.jpg": b"..."})  # arrange a container

``azurite`` is session-scoped (one server, ~1 s to start); each test takes its own container. Azurite comes
from npm into ./node_modules (``make test`` runs ``npm ci``); without it the fixture fails with that advice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BLOB = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public; still kept out of every output by cvbulk.storage).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"listens on https?://127\.0\.0\.1:(\d+)")
_START_DEADLINE = 60.0  # a loaded 2-core machine has taken 8 s


class Azurite:
    """One running ``azurite-blob`` process with its data in a temporary folder."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, location: Path) -> None:
        self.process = process
        self.port = port
        self.location = location

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def account_key(self) -> str:
        return KEY

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def environ(self) -> dict[str, str]:
        """The environment a user would set to point cvbulk at this Azurite."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def url(self, container: str, prefix: str = "") -> str:
        """The path-style location of ``container/prefix`` (``http://127.0.0.1:PORT/devstoreaccount1/...``)."""
        return f"{self.account_url}/{container}/{prefix}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class AzuriteStartError(RuntimeError):
    pass


def start_azurite(location: Path, *, in_memory: bool = False) -> Azurite:
    """Start ``azurite-blob`` on a free loopback port (``--blobPort 0``) and wait until it listens.

    ``in_memory`` keeps blobs in memory (benchmarks with 100,000 blobs); otherwise under ``location``, which
    holds the start-up log either way."""
    if not AZURITE_BLOB.exists():
        raise AzuriteStartError(
            f"{AZURITE_BLOB.relative_to(ROOT)} is missing: run `make test` or `npm ci` (installs Azurite)"
        )
    location.mkdir(parents=True, exist_ok=True)
    log_path = location / "azurite.out"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(AZURITE_BLOB),
                "--blobHost", "127.0.0.1",
                "--blobPort", "0",
                *(["--inMemoryPersistence"] if in_memory else ["--location", str(location)]),
                "--silent",
                "--skipApiVersionCheck",  # the SDK may speak a newer API version than this Azurite knows
                "--loose",
                "--disableTelemetry",  # tests talk only to 127.0.0.1
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=location,
        )
    deadline = time.monotonic() + _START_DEADLINE
    while True:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return Azurite(process, int(match.group(1)), location)
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-500:]
            raise AzuriteStartError(f"azurite-blob exited with {process.returncode}: {tail}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            raise AzuriteStartError(f"azurite-blob did not listen within {_START_DEADLINE:g} s")
        time.sleep(0.05)  # polling a child's start-up line, not waiting for a test result


async def put_into(azurite: Azurite, container: str, blobs: Mapping[str, bytes], *, create: bool = True) -> None:
    """:func:`put_blobs` through a client of its own on the Azurite account (``anyio.run(put_into, ...)`` in a
    synchronous test)."""
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await put_blobs(service, container, blobs, create=create)


async def put_blobs(service, container: str, blobs: Mapping[str, bytes], *, create: bool = True) -> None:
    """Create ``container`` (unless ``create`` is false) and upload ``blobs`` (name -> bytes), 16 at a time,
    with ``service`` an aio ``BlobServiceClient`` (the ``azurite_service`` fixture)."""
    client = service.get_container_client(container)
    if create:
        await client.create_container()
    limiter = anyio.CapacityLimiter(16)

    async def put(name: str, data: bytes) -> None:
        async with limiter:
            await client.upload_blob(name, data, overwrite=True)

    async with anyio.create_task_group() as tg:
        for name, data in blobs.items():
            tg.start_soon(put, name, data)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    location = Path(tempfile.mkdtemp(prefix="cvbulk-azurite-"))
    try:
        server = start_azurite(location)
    except AzuriteStartError as exc:
        shutil.rmtree(location, ignore_errors=True)
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(location, ignore_errors=True)


@pytest.fixture
def azurite_container(azurite: Azurite) -> str:
    """A container name no other test uses; created by the test (or by a sink with ``create=True``)."""
    return f"t{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def azurite_service(azurite: Azurite):
    """An azure-storage-blob ``BlobServiceClient`` (aio) on the Azurite account, for arranging test data."""
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        yield service


__all__ = ["Azurite", "AzuriteStartError", "start_azurite", "put_blobs", "azurite", "azurite_container", "azurite_service", "ACCOUNT", "KEY"]
