"""Image URIs on an origin of their own, as the service's are (the recordings: originalImageUri on
``irisprod...training.blob.core.windows.net``, not the endpoint's host). A client that paces calls to the
endpoint (cvbulk paces same-origin downloads as training calls) then downloads an export's images as it would
from Azure, not at the training rate (10 images/s at S0 instead of hundreds). The URIs are signed: no key."""

from __future__ import annotations

import io
import urllib.request

import aiohttp
import anyio
from PIL import Image
from yarl import URL

from cvbulk.client import Pacer, TrainingClient
from cvbulk.emulator import Emulator, EmulatorConfig, Latency


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 220)).save(out, "JPEG")
    return out.getvalue()


def test_image_uris_are_on_another_origin_and_need_no_key(emulator_thread):
    async def go() -> dict:
        async with TrainingClient(emulator_thread.endpoint, emulator_thread.training_key,
                                  pacer=Pacer.for_tier("unlimited")) as client:
            project = await client.create_project("origin-test")
            created = await client.create_images_from_data(project.id, [("a.jpg", _jpeg())])
            image = created.images[0].image
            got = await client.get_images_by_ids(project.id, [str(image.id)])
            return {"uri": got[0].original_image_uri, "thumb": got[0].thumbnail_uri}

    uris = anyio.run(go)
    endpoint = URL(emulator_thread.endpoint)
    for uri in uris.values():
        url = URL(uri)
        assert url.origin() != endpoint.origin(), uri
        assert url.host == endpoint.host  # the same machine, as the client reached it
    with urllib.request.urlopen(uris["uri"], timeout=10) as answer:  # no key header
        assert answer.status == 200 and answer.read() == _jpeg()


class _CountingPacer(Pacer):
    """A pacer that counts the slots taken, per API group."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered: dict = {}

    async def enter(self, group) -> None:
        self.entered[group] = self.entered.get(group, 0) + 1
        await super().enter(group)


async def test_downloads_are_not_paced_as_training_calls_but_bounded_by_the_connection_pool(tmp_path):
    """What a client does with a foreign origin (an Azure storage account's) now applies to the emulator's
    image URIs: no rate token of the training API is spent on them, and at most ``max_connections`` of
    them are in flight (aiohttp's pool), not one per task."""
    config = EmulatorConfig(data_dir=tmp_path, latency=Latency(per_download=0.2))
    async with Emulator(config) as emu:
        pacer = _CountingPacer(training_tps=1000)
        async with TrainingClient(emu.endpoint, emu.training_key, pacer=pacer, max_connections=4) as client:
            project = await client.create_project("pool")
            created = await client.create_images_from_data(project.id, [("a.jpg", _jpeg())])
            uri = created.images[0].image.original_image_uri
            before = dict(pacer.entered)
            async with anyio.create_task_group() as tg:
                for _ in range(12):
                    tg.start_soon(client.download, uri)
            assert pacer.entered == before  # 12 downloads, no slot of any API group taken
            # the storage listener saw the pool's connections (kept alive), never one per download
            open_connections = len(emu._storage_runner.server.connections)
            assert 1 <= open_connections <= 4, open_connections


async def test_the_storage_listener_serves_links_only(tmp_path):
    """No API on the storage origin; Azure Storage's XML errors; export tokens there too; a link clock
    moved past a link's lifetime expires it; the storage port is the data folder's after a restart."""
    async with Emulator(EmulatorConfig(data_dir=tmp_path)) as emu, aiohttp.ClientSession() as http:
        storage = emu.storage_endpoint
        assert URL(storage).host == URL(emu.endpoint).host and emu.storage_port != emu.port
        headers = {"Training-Key": emu.training_key}
        async with http.get(f"{storage}/customvision/v3.3/training/projects", headers=headers) as answer:
            assert answer.status == 404 and answer.headers["x-ms-error-code"] == "ResourceNotFound"
            assert "<Code>ResourceNotFound</Code>" in await answer.text()
        async with TrainingClient(emu.endpoint, emu.training_key, pacer=Pacer.for_tier("unlimited")) as client:
            project = await client.create_project("links")
            created = await client.create_images_from_data(project.id, [("a.jpg", _jpeg())])
            uri = created.images[0].image.original_image_uri
            missing = uri[:-64] + "0" * 64  # signed for another content: refused, not served
            async with http.get(missing) as answer:
                assert answer.status == 403 and answer.headers["x-ms-error-code"] == "AuthenticationFailed"
            exported = await client.export_project(project.id)
        assert exported.token.startswith(storage + "/emulator/exports/")
        async with http.get(exported.token) as answer:
            assert answer.status == 200 and (await answer.json())["projectId"] == str(project.id)
        async with http.post(exported.token) as answer:
            assert answer.status == 405 and answer.headers["x-ms-error-code"] == "UnsupportedHttpVerb"
        emu.advance_clock(emu.config.url_ttl_seconds + 1)  # every link issued so far has expired
        for link in (uri, exported.token):
            async with http.get(link) as answer:
                assert answer.status == 403 and "Signed expiry time" in await answer.text()
        port = emu.storage_port
    async with Emulator(EmulatorConfig(data_dir=tmp_path)) as again:
        assert again.storage_port == port  # links issued before a restart still reach it
