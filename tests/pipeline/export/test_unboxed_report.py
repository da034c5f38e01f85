"""A detection image tagged without a box: a box-only export says so in the report (``labels_not_carried``) and
on the terminal, instead of dropping the tag silently while the count check (which counts what was exported)
agrees."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
async def test_a_tag_without_a_box_is_reported(tmp_path, training_client, fmt):
    client = training_client
    pid = await build_project(client, f"loose-{fmt}", "detection", 12, untagged=2)
    untagged = (await client.get_untagged_images(pid, take=1))[0]
    pine = next(t for t in await client.get_tags(pid) if t.name == "pine")
    await client.create_image_tags(pid, [(untagged.id, pine.id)])
    with anyio.fail_after(30):
        result = await run_export(client, ExportOptions(pid, tmp_path / "out", fmt))
    loose = result.summary["labels_not_carried"]
    assert [x["image_id"] for x in loose] == [untagged.id] and "'pine' without a box" in loose[0]["reason"]
