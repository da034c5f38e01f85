"""A project's Negative-type tag goes out as COCO's ``supercategory: "Negative"`` and comes back, through
``upload --labels coco.json``, as a Negative tag (it came back Regular: upload created every tag Regular)."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.client import ImageFileCreateEntry
from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import tiny_jpeg, upload_labels

pytestmark = pytest.mark.timeout(60)


async def test_a_negative_tag_comes_back_negative(tmp_path, training_client):
    client = training_client
    project = await client.create_project("with-negative", classification_type="Multilabel")
    cat = await client.create_tag(project.id, "cat")
    neg = await client.create_tag(project.id, "Negative", type="Negative")
    await client.create_images_from_files(project.id, [
        ImageFileCreateEntry("a.jpg", tiny_jpeg(1), tag_ids=(cat.id,)),
        ImageFileCreateEntry("b.jpg", tiny_jpeg(2), tag_ids=(neg.id,)),
    ])
    with anyio.fail_after(30):
        result = await run_export(client, ExportOptions(project.id, tmp_path / "out", "coco"))
    assert result.ok
    target = await upload_labels(client, tmp_path / "out", "coco.json", "negative-back", tmp_path)
    types = {t.name: t.type for t in await client.get_tags(target)}
    assert types == {"cat": "Regular", "Negative": "Negative"}
