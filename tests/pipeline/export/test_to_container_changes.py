"""An export into a container run again after images were deleted from the project: the label files name only
the project's images, and the blobs of the deleted ones (which this run cannot delete) are named in the report's
``left_in_destination``, never silently left for an upload back to bring back."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project

pytestmark = pytest.mark.timeout(90)


async def test_blobs_of_deleted_images_are_named(tmp_path, monkeypatch, training_client, azurite, azurite_container):
    client = training_client
    monkeypatch.chdir(tmp_path)
    pid = await build_project(client, "to-blob-shrinks", "multilabel", 12)
    where = azurite.url(azurite_container, "exports/shrinks")
    env = azurite.environ()
    with anyio.fail_after(60):
        first = await run_export(client, ExportOptions(pid, where, "csv", storage_environ=env))
    assert first.ok and first.summary["left_in_destination"] == []
    victim = (await client.get_images(pid, take=1))[0].id
    await client.delete_images(pid, [victim])
    with anyio.fail_after(60):
        again = await run_export(client, ExportOptions(pid, where, "csv", storage_environ=env))
    assert again.ok, again.summary["count_check"]
    left = again.summary["left_in_destination"]
    assert [x["image_id"] for x in left] == [victim] and left[0]["file"] == f"images/{victim}.jpg"
    assert again.summary["removed"] == [] and again.summary["downloads"] == 0
