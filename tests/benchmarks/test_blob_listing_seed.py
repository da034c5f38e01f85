"""The blob listing benchmark's seeded fill: Azurite serves blobs written into its own database like PUT ones,
and the benchmark's child lists them as ``cvbulk upload az://...`` does (tags from the virtual folders)."""

from __future__ import annotations

import anyio

from benchmarks import blob_listing as bench
from tests._azurite import start_azurite


async def _blobs(connection_string: str, container: str) -> list[tuple[str, int, str, str | None]]:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        return [(b.name, b.size, b.etag, b.content_settings.content_type) async for b in client.list_blobs()]


def test_seeded_container_lists_like_a_put_one(tmp_path, monkeypatch):
    location = tmp_path / "azurite"
    server = start_azurite(location)
    try:
        server, fill = bench._fill(server, location, [3, 40], "seed")  # also reads a seeded blob back
        assert fill["method"] == "seed" and set(fill["seed_seconds"]) == {"3", "40"}

        seeded = anyio.run(_blobs, server.connection_string, "list40")
        assert sorted(name for name, *_ in seeded) == sorted(bench._blob_name(i) for i in range(40))
        assert {(size, kind) for _, size, _, kind in seeded} == {(len(bench.TINY), "image/jpeg")}
        assert len({etag for _, _, etag, _ in seeded}) == 40  # each its own ETag, as PUTs would have
        assert len(anyio.run(_blobs, server.connection_string, "list3")) == 3  # containers kept apart

        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
        row = anyio.run(bench._list_child, "list40")
        assert (row["listed"], row["pages"], row["tags"], row["tagged"]) == (40, 1, 10, 40)
    finally:
        server.stop()
