"""`cvbulk check` with a label file that has boxes compares the boxes too: the documented way to prove a
migration (export the source, check the export against the target) must see a box moved, added or lost, not
only the tags."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from ._support import cli, emulator, env  # noqa: F401 (fixtures)

SAMPLES = Path(__file__).resolve().parents[2] / "cvbulk" / "samples" / "ImageClassification" / "Images"


def _regions_file(root: Path, boxes: dict[str, list[tuple]]) -> Path:
    path = root / "regions.json"
    path.write_text(json.dumps({name: [dict(zip(("tag", "left", "top", "width", "height"), b)) for b in items]
                                for name, items in boxes.items()}))
    return path


def _move_a_box(emu, project: str) -> None:
    from cvbulk.client import ImageRegionCreateEntry, TrainingClient

    async def go() -> None:
        async with TrainingClient(emu.endpoint, emu.training_key) as client:
            pid = next(p.id for p in await client.get_projects() if p.name == project)
            image = next(i for i in await client.get_images(pid, take=10) if i.regions)
            region = image.regions[0]
            await client.delete_image_regions(pid, [region.region_id])
            await client.create_image_regions(pid, [ImageRegionCreateEntry(
                image.id, region.tag_id, region.left + 0.1, region.top, region.width * 0.5, region.height)])

    anyio.run(go)


def test_a_box_that_moved_is_a_difference(env, capsys, tmp_path):
    root = tmp_path / "boxes"
    root.mkdir()
    names = []
    for image in sorted((SAMPLES / "Hemlock").glob("*.jpg"))[:3]:
        (root / image.name).write_bytes(image.read_bytes())
        names.append(image.name)
    labels = _regions_file(root, {n: [("cone", 0.1, 0.2, 0.3, 0.4), ("cone", 0.5, 0.5, 0.25, 0.25)] for n in names})
    code, _, err = cli(capsys, "upload", str(root), "--project", "boxed", "--create", "--labels", str(labels),
                       "--tier", "unlimited")
    assert code == 0, err
    code, out, err = cli(capsys, "check", str(root), "--project", "boxed", "--labels", str(labels), "--progress", "none")
    assert code == 0, (out, err)
    assert out.count("= ") == 3

    _move_a_box(env, "boxed")
    code, out, err = cli(capsys, "check", str(root), "--project", "boxed", "--labels", str(labels), "--json",
                         "--progress", "none")
    assert code == 1, err
    result = json.loads(out)
    differ = [e for e in result["entries"] if e["outcome"] != "match" and e["path"] != "regions.json"]
    assert len(differ) == 1 and "regions differ" in differ[0]["reason"], differ
    code, out, err = cli(capsys, "check", str(root), "--project", "boxed", "--labels", str(labels), "--progress", "none")
    assert code == 1 and "regions differ" in out, out
