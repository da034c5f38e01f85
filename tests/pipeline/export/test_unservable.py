"""An image the service cannot serve (its link answers 404 however fresh) ends with exactly one outcome,
``failed``, with a one-line reason; the rest are exported, the run says it failed (exit 1 class), and the same
command later fetches that one image only."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.client._errors import NotFoundError
from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project

pytestmark = pytest.mark.timeout(60)


async def test_a_link_that_keeps_answering_404_fails_that_image_only(tmp_path, training_client):
    client = training_client
    pid = await build_project(client, "unservable", "multiclass", 10)
    bad = (await client.get_images(pid, take=1))[0]
    content = bad.original_image_uri.split("?", 1)[0].rsplit("/", 1)[-1]
    real = client.download

    async def missing(url):
        if url.split("?", 1)[0].rsplit("/", 1)[-1] == content:
            raise NotFoundError("download: HTTP 404 - The specified blob does not exist.\nRequestId: x", status=404)
        return await real(url)

    client.download = missing  # type: ignore[method-assign]
    with anyio.fail_after(30):
        result = await run_export(client, ExportOptions(pid, tmp_path / "out", "csv"))
    assert not result.ok and result.summary["exit_code"] == 1
    assert result.counts == {"exported": 9, "failed": 1}
    (failure,) = result.failures
    assert failure["path"] == bad.id and "\n" not in failure["reason"] and "404" in failure["reason"]

    client.download = real  # type: ignore[method-assign]
    again = await run_export(client, ExportOptions(pid, tmp_path / "out", "csv"))
    assert again.ok and again.summary["downloads"] == 1 and again.summary["unchanged"] == 9
