"""`cvbulk check ROOT --project P` against the threaded emulator: match, then differ both ways."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from ._support import assert_one_line_error, cli, emulator, env  # noqa: F401 (fixtures)

SAMPLES = Path(__file__).resolve().parents[2] / "cvbulk" / "samples" / "ImageClassification" / "Images"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Three images per tag of the classification samples: small, and both tags present."""
    root = tmp_path / "Images"
    for tag in ("Hemlock", "Japanese_Cherry"):
        (root / tag).mkdir(parents=True)
        for image in sorted((SAMPLES / tag).glob("*.jpg"))[:3]:
            shutil.copy(image, root / tag / image.name)
    return root


def _delete_image(emu, project_id: str, image_id: str) -> None:
    from cvbulk.client import TrainingClient

    async def go() -> None:
        async with TrainingClient(emu.endpoint, emu.training_key) as client:
            await client.delete_images(project_id, [image_id])

    anyio.run(go)


def test_check_matches_after_upload_then_lists_both_differences(env, capsys, tree):
    code, _, err = cli(capsys, "upload", str(tree), "--project", "checked", "--create", "--tier", "unlimited")
    assert code == 0, err

    code, out, err = cli(capsys, "check", str(tree), "--project", "checked", "--progress", "none")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 6 and all(line.startswith("= ") for line in lines), out
    assert "6 match" in err and "they match" in err

    code, out, err = cli(capsys, "check", str(tree), "--project", "checked", "--json", "--progress", "none")
    assert code == 0, err
    result = json.loads(out)
    assert result["matched"] is True and result["counts"]["match"] == 6

    # One image deleted in the project, one new local file, one file moved to the other tag.
    gone = next(e for e in result["entries"] if e["path"] == "Hemlock/hemlock_1.jpg")
    _delete_image(env, result["project"]["id"], gone["image_id"])
    shutil.copy(SAMPLES / "Hemlock" / "hemlock_9.jpg", tree / "Hemlock" / "hemlock_9.jpg")
    shutil.move(tree / "Japanese_Cherry" / "japanese_cherry_1.jpg", tree / "Hemlock" / "japanese_cherry_1.jpg")

    code, out, err = cli(capsys, "check", str(tree), "--project", "checked", "--progress", "none")
    assert code == 1, err
    assert "- Hemlock/hemlock_1.jpg  [Hemlock]" in out  # the deleted one: local only now
    assert "- Hemlock/hemlock_9.jpg  [Hemlock]" in out  # the new local file
    assert "* Hemlock/japanese_cherry_1.jpg  local [Hemlock] != project [Japanese_Cherry]" in out
    assert "they differ" in err

    code, out, err = cli(capsys, "check", str(tree), "--project", "checked", "--json", "--progress", "none")
    assert code == 1
    counts = json.loads(out)["counts"]
    assert counts == {"match": 4, "tags_differ": 1, "only_local": 2, "only_in_project": 0, "not_compared": 0, "skipped": 0}


def test_an_image_only_in_the_project_and_a_file_upload_would_reject(env, capsys, tree):
    code, _, err = cli(capsys, "upload", str(tree), "--project", "extra", "--create", "--tier", "unlimited")
    assert code == 0, err
    (tree / "Hemlock" / "hemlock_1.jpg").unlink()
    (tree / "Hemlock" / "broken.jpg").write_bytes(b"not an image")

    code, out, err = cli(capsys, "check", str(tree), "--project", "extra", "--progress", "none")
    assert code == 1, err
    plus = [line for line in out.splitlines() if line.startswith("+ image ")]
    assert len(plus) == 1 and plus[0].endswith("[Hemlock]"), out
    assert any(line.startswith("! Hemlock/broken.jpg  (upload would reject it:") for line in out.splitlines())


def test_unknown_project_is_fatal_and_a_missing_root_is_usage(env, capsys, tree):
    code, _, err = cli(capsys, "check", str(tree), "--project", "nope", "--progress", "none")
    assert code == 3
    assert_one_line_error(err)
    code, _, err = cli(capsys, "check", str(tree / "missing"), "--project", "nope")
    assert code == 2
    assert_one_line_error(err)
