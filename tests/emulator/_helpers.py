"""Small in-memory images and request helpers for the emulator tests."""

from __future__ import annotations

import io
import random

import aiohttp
from PIL import Image


def jpeg(seed: int, size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    rnd = random.Random(seed)
    if noise:
        img = Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))
    else:
        img = Image.new("RGB", size, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("L", size).save(out, "PNG")
    return out.getvalue()


def multipart(images: list[tuple[str, bytes]], field: str = "imageData") -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, data in images:
        form.add_field(field, data, filename=name, content_type="application/octet-stream")
    return form


class Api:
    """Training and prediction calls against one emulator, with its keys."""

    def __init__(self, session: aiohttp.ClientSession, emu, version: str = "v3.3") -> None:
        self.s = session
        self.emu = emu
        self.t = f"{emu.endpoint}/customvision/{version}/training"
        self.p = f"{emu.endpoint}/customvision/v3.0/prediction"
        self.th = {"Training-Key": emu.training_key}
        self.ph = {"Prediction-Key": emu.prediction_key}

    async def call(self, method: str, path: str, *, expect: int | None = 200, **kw):
        headers = {**self.th, **kw.pop("headers", {})}
        async with self.s.request(method, self.t + path, headers=headers, **kw) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.read()
            if expect is not None:
                assert resp.status == expect, (resp.status, body)
            return resp.status, body

    async def project(self, name: str = "p", **params) -> dict:
        return (await self.call("POST", "/projects", params={"name": name, **params}))[1]

    async def tag(self, pid: str, name: str) -> dict:
        return (await self.call("POST", f"/projects/{pid}/tags", params={"name": name}))[1]

    async def upload(self, pid: str, images: list[tuple[str, bytes]], tag_ids=(), expect=200):
        params = {"tagIds": ",".join(tag_ids)} if tag_ids else None
        return await self.call("POST", f"/projects/{pid}/images", data=multipart(images), params=params,
                               expect=expect)


async def classification_project(api: Api, samples) -> tuple[str, dict[str, str]]:
    """A Multiclass project with the quickstart's 10 + 10 sample images."""
    import anyio

    pid = (await api.project("trees"))["id"]
    tags = {}
    for folder, name in (("Hemlock", "Hemlock"), ("Japanese_Cherry", "Japanese Cherry")):
        tags[name] = (await api.tag(pid, name))["id"]
        files = sorted((samples / "ImageClassification" / "Images" / folder).glob("*.jpg"))
        images = [(f.name, await anyio.Path(f).read_bytes()) for f in files]
        await api.upload(pid, images, [tags[name]])
    return pid, tags


async def wait_trained(api: Api, pid: str, iteration: dict, limit: float = 60.0) -> dict:
    import anyio

    with anyio.fail_after(limit):
        while iteration["status"] == "Training":
            await anyio.sleep(0.05)  # polling the service, as a client does
            _, iteration = await api.call("GET", f"/projects/{pid}/iterations/{iteration['id']}")
    return iteration
