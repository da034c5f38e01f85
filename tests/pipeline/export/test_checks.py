"""What the export checks: the counts against the service's, the bytes it downloads, untagged images."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project

pytestmark = pytest.mark.timeout(60)


async def test_an_image_deleted_after_its_export_fails_the_count_check(tmp_path, training_client):
    client = training_client
    pid = await build_project(client, "shrinking", "multiclass", 40)
    real = client.get_tagged_image_count
    victim: list[str] = []

    async def deleted_meanwhile(project_id, **kw):
        if not victim:  # an image deleted after it was exported, before the end of the run
            image = (await client.get_images(project_id, take=1))[0]
            victim.append(image.id)
            await client.delete_images(project_id, [image.id])
        return await real(project_id, **kw)

    client.get_tagged_image_count = deleted_meanwhile  # type: ignore[method-assign]
    result = await run_export(client, ExportOptions(pid, tmp_path / "out", "csv"))
    check = result.summary["count_check"]
    assert not result.ok and result.summary["exit_code"] == 1
    assert not check["ok"] and check["line"].startswith("export does not match the project: ")
    assert "images: 39 in the project, 40 exported" in check["differences"]

    # run again: the deleted image is no longer listed, its row is left out, the counts agree
    client.get_tagged_image_count = real  # type: ignore[method-assign]
    again = await run_export(client, ExportOptions(pid, tmp_path / "out", "csv"))
    assert again.ok, again.summary["count_check"]
    assert again.summary["count_check"]["exported"]["images"] == 39
    assert victim[0] not in (tmp_path / "out" / "labels.csv").read_text()


async def test_a_download_that_is_not_an_image_fails_that_image_only(tmp_path, training_client):
    client = training_client
    pid = await build_project(client, "garbled", "multilabel", 20)
    bad = (await client.get_images(pid, take=1))[0]
    real = client.download
    calls: list[str] = []
    # the image's URI ends with its content's name; its signature and expiry change from listing to listing (a
    # listing in another second than this one's gives another URL for the same image)
    content = bad.original_image_uri.split("?", 1)[0].rsplit("/", 1)[-1]

    async def garbled(url):
        data = await real(url)
        if bad.id in url or url.split("?", 1)[0].rsplit("/", 1)[-1] == content:
            calls.append(url)
            return b"<html>not an image</html>"
        return data

    client.download = garbled  # type: ignore[method-assign]
    result = await run_export(client, ExportOptions(pid, tmp_path / "out", "automl"))
    assert not result.ok
    assert result.counts == {"exported": 19, "failed": 1}
    (failure,) = result.failures
    assert "not a readable image" in failure["reason"]
    assert len(calls) == 2  # fetched once more before giving up
    assert not (tmp_path / "out" / "images").joinpath(f"{bad.id}.jpg").exists()


async def test_untagged_images_are_downloaded_and_each_format_says_what_it_did(tmp_path, training_client):
    client = training_client
    pid = await build_project(client, "some-untagged", "multiclass", 30, untagged=4)
    automl = await run_export(client, ExportOptions(pid, tmp_path / "automl", "automl"))
    assert automl.ok, automl.summary["count_check"]
    assert automl.counts == {"exported": 30}
    skipped = automl.summary["not_in_label_files"]
    assert len(skipped) == 4  # AutoML classification has no place for an image without a label
    lines = (tmp_path / "automl" / "train" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 26
    coco = await run_export(client, ExportOptions(pid, tmp_path / "coco", "coco"))
    assert coco.ok and coco.summary["not_in_label_files"] == []
    assert coco.summary["count_check"]["exported"]["untagged"] == 4


async def test_yolo_refuses_a_classification_project_before_downloading(tmp_path, training_client):
    from cvbulk.pipeline.errors import ConfigError

    pid = await build_project(training_client, "cls", "multiclass", 3)
    with pytest.raises(ConfigError, match="boxes only"), anyio.fail_after(10):
        await run_export(training_client, ExportOptions(pid, tmp_path / "out", "yolo"))
    assert not (tmp_path / "out" / "images").exists()
