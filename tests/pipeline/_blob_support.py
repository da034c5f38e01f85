"""Shared by the container tests: the sample tree put into an Azurite container."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import anyio

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples" / "ImageClassification" / "Images"


def sample_blobs(*, skip: str = "Test") -> dict[str, bytes]:
    """name -> bytes of the sample tree (tags = folders), without the ``skip`` folder."""
    out: dict[str, bytes] = {}
    for path in sorted(SAMPLES.rglob("*")):
        rel = path.relative_to(SAMPLES).as_posix()
        if path.is_file() and not rel.startswith(skip + "/"):
            out[rel] = path.read_bytes()
    return out


async def put_blobs(service, container: str, blobs: Mapping[str, bytes], *, create: bool = True) -> None:
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
