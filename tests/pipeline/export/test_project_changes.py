"""An export run again after the project changed leaves exactly the project in OUT: the files of images deleted
from the project since are removed (a folder holding them would upload them back), and an image whose folder
changed (its first tag renamed) is moved on disk, not downloaded again."""

from __future__ import annotations

import csv

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project, tiny_jpeg

pytestmark = pytest.mark.timeout(60)


def image_files(out) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.jpg") if ".cvbulk" not in p.parts}


@pytest.mark.parametrize("fmt", ["folders", "csv"])
async def test_deleted_images_leave_the_folder_and_moved_ones_are_not_downloaded(tmp_path, training_client, fmt):
    client = training_client
    pid = await build_project(client, f"changing-{fmt}", "multilabel", 40, untagged=4)
    out = tmp_path / "out"
    with anyio.fail_after(30):
        first = await run_export(client, ExportOptions(pid, out, fmt))
    assert first.ok and len(image_files(out)) == 40

    images = await client.get_images(pid, take=256)
    gone = [images[0].id, images[5].id]
    await client.delete_images(pid, gone)
    oak = next(t for t in await client.get_tags(pid) if t.name == "oak")
    await client.update_tag(pid, oak.id, name="oak renamed")
    added = await client.create_images_from_data(pid, [("n.jpg", tiny_jpeg(777))], tag_ids=[oak.id])
    assert added.images[0].status == "OK"

    with anyio.fail_after(30):
        again = await run_export(client, ExportOptions(pid, out, fmt))
    assert again.ok, again.summary["count_check"]
    on_disk = image_files(out)
    assert len(on_disk) == 39 and not any(g in name for g in gone for name in on_disk)
    listed = {row["path"] for row in csv.DictReader((out / "labels.csv").open(encoding="utf-8"))}
    assert listed == on_disk
    assert again.summary["downloads"] == 1  # the new image only: a moved one is renamed on disk
    assert sorted(r["image_id"] for r in again.summary["removed"]) == sorted(gone)
    if fmt == "folders":
        assert not (out / "oak").exists()  # emptied by the moves, not left behind

    third = await run_export(client, ExportOptions(pid, out, fmt))
    assert third.ok and third.summary["downloads"] == 0 and third.summary["removed"] == []
    assert image_files(out) == on_disk


async def test_an_unwritable_report_is_refused_before_anything_is_downloaded(tmp_path, training_client):
    client = training_client
    pid = await build_project(client, "unwritable-report", "multiclass", 5)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    from cvbulk.pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="a-file"):
        await run_export(client, ExportOptions(pid, tmp_path / "out", "csv", report=blocker / "report.json"))
    assert not (tmp_path / "out").exists() or not image_files(tmp_path / "out")
    with pytest.raises(ConfigError, match="a-file"):
        await run_export(client, ExportOptions(pid, tmp_path / "out2", "csv", state=blocker / "state.sqlite"))
    assert not (tmp_path / "out2").exists() or not image_files(tmp_path / "out2")


async def test_images_the_export_did_not_write_are_named(tmp_path, training_client):
    """OUT already held images of the user's: the way back (``upload OUT --untagged``) would send them too, so
    the report names them (``other_images``) and the terminal says so."""
    client = training_client
    pid = await build_project(client, "crowded", "multiclass", 6)
    out = tmp_path / "out"
    (out / "holiday").mkdir(parents=True)
    (out / "holiday" / "beach.jpg").write_bytes(tiny_jpeg(4242))
    (out / "notes.txt").write_text("mine")
    with anyio.fail_after(30):
        first = await run_export(client, ExportOptions(pid, out, "csv"))
    assert first.ok and first.summary["other_images"] == ["holiday/beach.jpg"]
    again = await run_export(client, ExportOptions(pid, out, "csv"))  # its own images are not "other"
    assert again.summary["other_images"] == ["holiday/beach.jpg"]
