"""Issue 17, "Counts that are true": every candidate the user pointed at is in the report with its outcome.

Before the fix, files ``--exclude`` left out and rows of a label file naming missing files were silently
absent; label problems were "skipped, bad labels" (sent nowhere, counted as fine); the report held counts of
skipped files and of fixes per kind, not which files. Now each candidate has exactly one row in the state
file and is listed in the JSON report with its reason: ``extra.skipped`` (path, reason), ``failures``
(rejected: invalid labels), ``extra.fixed`` (path, the fixes applied), ``extra.notes`` (a name ending in a
space, a file changed since it was uploaded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests.corpus import make_jpeg

from .conftest import cli_env, cvbulk, journal_rows, training_client

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    with EmulatorThread(EmulatorConfig(data_dir=tmp / "emulator", seed=5)) as emu:
        yield emu


def _tree(root: Path) -> dict[str, str]:
    """The candidates and what each must end as (a status, or "fixed"/"noted" for an upload with a remark)."""
    img = root / "img"
    for i in range(3):
        make_jpeg(img / f"ok{i}.jpg", (24, 24), seed=i)
    make_jpeg(img / "no-tags.jpg", (24, 24), seed=10)
    make_jpeg(img / "bad-tag.jpg", (24, 24), seed=11)
    make_jpeg(img / "not-listed.jpg", (24, 24), seed=12)
    make_jpeg(img / "trailing.jpg ", (24, 24), seed=13)
    make_jpeg(img / "drafts" / "draft.jpg", (24, 24), seed=14)
    Image.new("RGB", (24, 24), (200, 10, 10)).save(img / "red.webp", "WEBP")
    make_jpeg(img / ".hidden.jpg", (24, 24), seed=15)
    (img / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (img / "photo.avif").write_bytes(b"\0\0\0\x18ftypavif")
    (img / "notes.txt").write_text("hello")
    os.mkfifo(img / "pipe.jpg")
    rows = ["path,tags", "ok0.jpg,cat", "ok1.jpg,dog", "ok2.jpg,cat;dog", "no-tags.jpg,",
            f"bad-tag.jpg,{'x' * 300}", "drafts/draft.jpg,cat", "red.webp,dog",
            "gone.jpg,cat", "sub/also-gone.jpg,dog"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {
        "ok0.jpg": "uploaded", "ok1.jpg": "uploaded", "ok2.jpg": "uploaded",
        "no-tags.jpg": "skipped", "bad-tag.jpg": "rejected", "not-listed.jpg": "skipped",
        "drafts/draft.jpg": "skipped", "red.webp": "fixed",
        "trailing.jpg ": "skipped",  # a manifest cell is trimmed: no row can name it (noted as well)
        ".hidden.jpg": "skipped", "photo.heic": "skipped", "photo.avif": "skipped", "notes.txt": "skipped",
        "pipe.jpg": "skipped", "gone.jpg": "skipped", "sub/also-gone.jpg": "skipped",
    }


def test_every_candidate_has_one_outcome_and_is_listed_with_its_reason(emu, tmp_path):
    expected = _tree(tmp_path)
    state, report_file = tmp_path / "state.sqlite", tmp_path / "report.json"
    done = cvbulk("upload", str(tmp_path / "img"), "--project", "every-candidate", "--create", "--tier", "unlimited",
                  "--labels", str(tmp_path / "labels.csv"), "--exclude", "drafts", "--state", str(state),
                  "--report", str(report_file), "--json", env=cli_env(emu), cwd=tmp_path, timeout=60)
    assert done.returncode == 1, done.stderr  # one image rejected (its tag is too long): not all done
    assert "Traceback" not in done.stderr
    report = json.loads(report_file.read_text(encoding="utf-8"))
    rows = journal_rows(state)
    assert set(rows) == set(expected), sorted(set(rows) ^ set(expected))  # exactly one row per candidate

    skipped = {s["path"]: s["reason"] for s in report["extra"]["skipped"]}
    failures = {f["path"]: f for f in report["failures"]}
    fixed = {f["path"]: f["fixes"] for f in report["extra"]["fixed"]}
    notes = {n["path"]: n["note"] for n in report["extra"]["notes"]}
    for path, want in expected.items():
        status = rows[path]["status"]
        if want == "skipped":
            assert status == "skipped" and skipped[path] == rows[path]["reason"], (path, rows[path])
        elif want == "rejected":
            assert status == "rejected" and failures[path]["reason"].startswith("bad labels: "), (path, rows[path])
        elif want == "fixed":
            assert status == "uploaded" and any(f.startswith("converted WEBP") for f in fixed[path]), fixed
        elif want == "noted":
            assert status == "uploaded" and "name ends with a space" in notes[path], (path, notes)
        else:
            assert status == want, (path, rows[path])
    assert skipped["drafts/draft.jpg"] == "excluded by --exclude drafts"
    assert skipped["no-tags.jpg"].startswith("untagged")
    assert skipped["not-listed.jpg"] == skipped["trailing.jpg "] == "no label"
    assert "name ends with a space" in notes["trailing.jpg "]
    assert skipped["gone.jpg"] == skipped["sub/also-gone.jpg"] == (
        "listed in the label file, but there is no such file under ROOT")
    assert "unsupported format .heic" in skipped["photo.heic"] and "unsupported format .avif" in skipped["photo.avif"]
    assert "hidden file" in skipped[".hidden.jpg"] and "FIFO" in skipped["pipe.jpg"]
    assert report["counts"] == {"uploaded": 4, "skipped": 11, "rejected": 1}

    # A second run: nothing to do, nothing listed twice, and the listing is still whole.
    again = cvbulk("upload", str(tmp_path / "img"), "--project", "every-candidate", "--tier", "unlimited",
                   "--labels", str(tmp_path / "labels.csv"), "--exclude", "drafts", "--state", str(state),
                   "--report", str(report_file), "--json", env=cli_env(emu), cwd=tmp_path, timeout=60)
    second = json.loads(again.stdout)
    assert second["counts"] == {} and len(second["extra"]["skipped"]) == 11
    assert set(journal_rows(state)) == set(expected)


def test_untagged_rows_are_skipped_and_sent_with_the_flag(emu, tmp_path):
    img = tmp_path / "img"
    make_jpeg(img / "a.jpg", (24, 24), seed=1)
    make_jpeg(img / "b.jpg", (24, 24), seed=2)
    (tmp_path / "labels.csv").write_text("path,tags\na.jpg,cat\nb.jpg,\n", encoding="utf-8")
    argv = ["upload", str(img), "--project", "untagged-rule", "--create", "--tier", "unlimited",
            "--labels", str(tmp_path / "labels.csv"), "--state", str(tmp_path / "s.sqlite"), "--json"]
    first = json.loads(cvbulk(*argv, env=cli_env(emu), cwd=tmp_path).stdout)
    assert first["counts"] == {"uploaded": 1, "skipped": 1}
    second = json.loads(cvbulk(*argv, "--untagged", env=cli_env(emu), cwd=tmp_path).stdout)
    assert second["counts"] == {"uploaded": 1}  # b.jpg had work after all: --untagged now


def test_a_malformed_label_file_fails_with_its_line_and_sends_nothing(emu, tmp_path):
    img = tmp_path / "img"
    make_jpeg(img / "a.jpg", (24, 24), seed=1)
    (tmp_path / "labels.csv").write_text('path,tags\na.jpg,cat\n"b.jpg,dog\n', encoding="utf-8")
    done = cvbulk("upload", str(img), "--project", "malformed", "--create", "--tier", "unlimited",
                  "--labels", str(tmp_path / "labels.csv"), env=cli_env(emu), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "line 3" in done.stderr and len(done.stderr.strip().splitlines()) == 1


async def test_a_file_changed_after_it_was_uploaded_is_said(emu, tmp_path):
    img = tmp_path / "img" / "cat"
    make_jpeg(img / "a.jpg", (24, 24), seed=1)
    argv = ["upload", str(tmp_path / "img"), "--project", "changed", "--create", "--tier", "unlimited",
            "--state", str(tmp_path / "s.sqlite"), "--report", str(tmp_path / "r.json")]
    assert cvbulk(*argv, env=cli_env(emu), cwd=tmp_path).returncode == 0
    old_id = journal_rows(tmp_path / "s.sqlite")["cat/a.jpg"]["image_id"]
    make_jpeg(img / "a.jpg", (24, 24), seed=2)  # new content under the same name
    assert cvbulk(*argv, env=cli_env(emu), cwd=tmp_path).returncode == 0
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    (note,) = report["extra"]["notes"]
    assert note["path"] == "cat/a.jpg"
    assert note["note"] == (f"changed since uploaded: sent again as a new image; the old image stays in the "
                            f"project (id {old_id})")
    async with training_client(emu) as client:
        (project,) = [p for p in await client.get_projects() if p.name == "changed"]
        assert await client.get_image_count(project.id) == 2  # what the note says

    # --replace-changed: the old image goes once the new one is in
    make_jpeg(img / "a.jpg", (24, 24), seed=3)
    before = journal_rows(tmp_path / "s.sqlite")["cat/a.jpg"]["image_id"]
    assert cvbulk(*argv, "--replace-changed", env=cli_env(emu), cwd=tmp_path).returncode == 0
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    (note,) = report["extra"]["notes"]
    assert note["note"] == f"changed since uploaded: sent again; the old image (id {before}) was deleted"
    async with training_client(emu) as client:
        assert await client.get_image_count(project.id) == 2
        ids = {im.id async for im in client.iter_images(project.id)}
        assert before not in ids and old_id in ids
