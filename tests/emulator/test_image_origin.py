"""Image URIs on an origin of their own, as the service's are (the recordings: originalImageUri on
``irisprod...training.blob.core.windows.net``, not the endpoint's host). A client that paces calls to the
endpoint (cvbulk paces same-origin downloads as training calls) then downloads an export's images as it would
from Azure, not at the training rate (10 images/s at S0 instead of hundreds). The URIs are signed: no key."""

from __future__ import annotations

import io
import urllib.request

import pytest
from PIL import Image
from yarl import URL

from cvbulk.client import Pacer, TrainingClient


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 220)).save(out, "JPEG")
    return out.getvalue()


def test_image_uris_are_on_another_origin_and_need_no_key(emulator_thread):
    import anyio

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
