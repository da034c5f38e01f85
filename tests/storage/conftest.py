"""Storage tests run against a real Azurite (tests/_azurite.py) and real local folders."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest

from tests._azurite import azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)


async def put_blobs(service, container: str, blobs: Mapping[str, bytes], *, create: bool = True) -> None:
    """Create ``container`` (unless ``create`` is false) and upload ``blobs`` with a few uploads at a time."""
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


@pytest.fixture
def environ(azurite) -> dict[str, str]:  # noqa: F811
    """The environment that points cvbulk.storage at the test's Azurite."""
    return azurite.environ()
