"""Issue 17, "Counts that are true": killed and resumed, an upload of identical pairs reports what the
project holds.

Before the fix, an image answered ``OKDuplicate`` after a restart counted as ``uploaded`` whenever the journal
said ``sending`` for the file, even when the image was its twin's: 100 identical pairs killed mid-run and
resumed reported 200 uploaded while the project held 100. Now an image id has one owner (the journal's, or the
first file of the run to claim it); the other file is a ``duplicate`` of it, naming it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread, Latency
from cvbulk.pipeline.journal import Journal, JournalEntry
from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests.corpus import make_jpeg

from .conftest import (
    cli_env,
    cvbulk,
    integrity,
    journal_count,
    journal_rows,
    measure,
    spawn,
    training_client,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

PAIRS = 100


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("counts")
    with EmulatorThread(EmulatorConfig(data_dir=tmp / "emulator", seed=17)) as emu:
        yield emu


def _pairs(root: Path, n: int = PAIRS) -> list[str]:
    """``n`` distinct images, each twice: ``a/i.jpg`` and the same bytes as ``b/i.jpg``."""
    (root / "b").mkdir(parents=True)
    for i in range(n):
        make_jpeg(root / "a" / f"{i:03d}.jpg", (24, 24), seed=1000 + i)
        shutil.copyfile(root / "a" / f"{i:03d}.jpg", root / "b" / f"{i:03d}.jpg")
    return sorted(f"{t}/{i:03d}.jpg" for t in "ab" for i in range(n))


def _entry(root: Path, key: str, status: str, image_id: str | None = None) -> JournalEntry:
    st = (root / key).stat()
    return JournalEntry(key, st.st_size, st.st_mtime_ns, None, status, image_id=image_id)


async def _killed_run(emu, root: Path, name: str, keys: list[str], uploaded_by: str | None) -> tuple[str, dict[str, str]]:
    """What a run killed after its requests went through leaves behind: the images in the project, and
    (``uploaded_by`` = "a") a's rows recorded, b's still ``sending``; (None) every row ``sending``."""
    async with training_client(emu) as client:
        project = await client.create_project(name)
        firsts = [k for k in keys if k.startswith("a/")]
        ids: dict[str, str] = {}
        for start in range(0, len(firsts), 50):
            chunk = firsts[start : start + 50]
            summary = await client.create_images_from_data(project.id, [(k.replace("/", "_"), (root / k).read_bytes()) for k in chunk])
            for k, r in zip(chunk, summary.images):
                assert r.image is not None
                ids[k] = r.image.id
    return project.id, ids


async def _resume(emu, root: Path, project_id: str, state: Path, report: Path):
    async with training_client(emu) as client:
        with anyio.fail_after(60):
            result = await run_upload(client, UploadOptions(root=root, project=project_id, state=state, report=report))
        in_project = await client.get_image_count(project_id)
    return result, in_project


async def test_twins_both_left_sending_count_once(emu, tmp_path):
    root = tmp_path / "tree"
    keys = _pairs(root)
    project_id, _ = await _killed_run(emu, root, "twins-sending", keys, None)
    state, report = tmp_path / "state.sqlite", tmp_path / "report.json"
    with Journal.open(state, job="upload", fingerprint={"root": str(root.resolve()), "project_id": project_id}) as j:
        j.mark_sending([_entry(root, k, "sending") for k in keys])  # killed after the intent, before the outcome

    result, in_project = await _resume(emu, root, project_id, state, report)

    assert in_project == PAIRS
    assert result.counts == {"uploaded": PAIRS, "duplicate": PAIRS}  # was {"uploaded": 200}
    assert result.summary["state_counts"] == {"duplicate": PAIRS, "uploaded": PAIRS}
    rows = journal_rows(state)
    owners = {r["image_id"] for r in rows.values() if r["status"] == "uploaded"}
    assert len(owners) == PAIRS  # one owner per image
    for r in rows.values():
        if r["status"] == "duplicate":
            assert r["reason"].startswith("the same image is already in the project (uploaded from "), r
    measure("upload: 100 identical pairs, every row left sending, resumed", in_project=in_project,
            uploaded=result.counts["uploaded"], duplicate=result.counts["duplicate"])


async def test_twin_of_a_recorded_file_is_its_duplicate(emu, tmp_path):
    root = tmp_path / "tree"
    keys = _pairs(root)
    project_id, ids = await _killed_run(emu, root, "twins-recorded", keys, "a")
    state, report = tmp_path / "state.sqlite", tmp_path / "report.json"
    with Journal.open(state, job="upload", fingerprint={"root": str(root.resolve()), "project_id": project_id}) as j:
        j.record([_entry(root, k, "uploaded", ids[k]) for k in keys if k.startswith("a/")])
        j.mark_sending([_entry(root, k, "sending") for k in keys if k.startswith("b/")])

    result, in_project = await _resume(emu, root, project_id, state, report)

    assert in_project == PAIRS
    assert result.counts == {"duplicate": PAIRS}  # was {"uploaded": 100}: 200 uploaded in the state file
    assert result.summary["state_counts"] == {"duplicate": PAIRS, "uploaded": PAIRS}
    rows = journal_rows(state)
    for i in range(PAIRS):
        b = rows[f"b/{i:03d}.jpg"]
        assert b["status"] == "duplicate" and b["image_id"] == ids[f"a/{i:03d}.jpg"]
        assert b["reason"] == f"the same image is already in the project (uploaded from a/{i:03d}.jpg)"
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["extra"]["state_counts"] == {"duplicate": PAIRS, "uploaded": PAIRS}


async def test_identical_pairs_killed_and_resumed_report_what_the_project_holds(emu, tmp_path):
    """The real thing: ``cvbulk upload`` killed with SIGKILL three times mid-run, then resumed."""
    root = tmp_path / "tree"
    keys = _pairs(root)
    state = tmp_path / "upload.sqlite"
    env = cli_env(emu)
    argv = ["upload", str(root), "--project", "pairs-kill", "--create", "--tier", "unlimited",
            "--batch-bytes", "6000", "--max-concurrency", "4", "--state", str(state),
            "--report", str(tmp_path / "report.json")]
    emu.set_latency(Latency(per_request=0.08))
    kills = 0
    try:
        for k in (1, 60, 130):
            proc = spawn(*argv, env=env, cwd=tmp_path)
            wait_until(lambda k=k: journal_count(state, ("uploaded", "duplicate", "sending")) >= k,
                       timeout=60, what=f"{k} rows", proc=proc)
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait(30)
            assert integrity(state) == "ok"
    finally:
        emu.set_latency(Latency())
    done = cvbulk(*argv, "--json", env=env, cwd=tmp_path, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    rows = journal_rows(state)
    assert set(rows) == set(keys)
    uploaded = [r for r in rows.values() if r["status"] == "uploaded"]
    async with training_client(emu) as client:
        (project,) = [p for p in await client.get_projects() if p.name == "pairs-kill"]
        in_project = await client.get_image_count(project.id)
    assert in_project == PAIRS
    assert len(uploaded) == in_project and len({r["image_id"] for r in uploaded}) == in_project
    assert report["extra"]["state_counts"] == {"duplicate": PAIRS, "uploaded": PAIRS}
    measure("upload: 100 identical pairs, SIGKILL x3, resumed", kills=kills, in_project=in_project,
            uploaded_in_state=len(uploaded))
