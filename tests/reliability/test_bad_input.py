"""The bad-input corpus of tests/corpus.py through ``cvbulk upload`` and ``cvbulk predict``.

Every awkward file gets its defined outcome (uploaded untouched, fixed and uploaded, a duplicate,
rejected or skipped) with a one-line reason in the state file and the report; none stops the run; the
run exits 1 (some files failed) with no traceback on stderr. The file that vanishes between scan and
read needs an in-process scan (``vanish_after_scan``), so it has its own test through ``run_upload``.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests.corpus import VANISHING, make_bad_corpus, make_tree, restore_permissions, vanish_after_scan

from .conftest import (
    cli_env,
    cvbulk,
    integrity,
    journal_rows,
    measure,
    one_row_each,
    output_rows,
    published_emulator,
    training_client,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with published_emulator(tmp_path_factory, "bad-input", seed=41) as emu:
        yield emu


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    expected = make_bad_corpus(root, include_vanishing=False)
    make_tree(root, {"good": 3}, size=(32, 32), seed=4242)  # a few plain images beside them
    expected.update({f"good/good_{i:04d}.jpg": "uploaded" for i in range(3)})
    yield root, expected
    restore_permissions(root)


def _one_line(text: str | None) -> bool:
    return bool(text and text.strip()) and "\n" not in text and "\r" not in text and len(text) < 400


def check_outcomes(rows: dict[str, dict], expected: dict[str, str]) -> dict[str, int]:
    """Each file of the corpus ended in its defined outcome; returns how many of each."""
    dups = [k for k, outcome in expected.items() if outcome == "duplicate"]
    twins = {k: k.replace("dup_b", "dup_a") for k in dups}
    tally: dict[str, int] = {}
    for rel, outcome in expected.items():
        assert rel in rows, f"{rel}: no outcome recorded"
        row = rows[rel]
        status, reason, fixes = row["status"], row["reason"], json.loads(row["fixes"] or "[]")
        if outcome == "duplicate" or rel in twins.values():
            # Same bytes under two names: whichever the service saw first is uploaded, the other is
            # the duplicate, with a reason.
            pair = [rows[rel]["status"] for rel in (dups[0], twins[dups[0]])]
            assert sorted(pair) == ["duplicate", "uploaded"], (rel, pair)
            if status == "duplicate":
                assert _one_line(reason), rel
        elif outcome == "uploaded":
            assert status == "uploaded" and fixes == [], (rel, status, fixes, reason)
        elif outcome == "fixed":
            assert status == "uploaded" and fixes, (rel, status, fixes, reason)
        elif outcome in ("rejected", "skipped"):
            assert status == outcome, (rel, status, reason)
            assert _one_line(reason), (rel, reason)
        else:  # pragma: no cover - a new outcome in the corpus
            raise AssertionError(f"unknown outcome {outcome!r} for {rel}")
        tally[outcome] = tally.get(outcome, 0) + 1
    return tally


def test_upload_the_bad_corpus(emu, corpus, tmp_path):
    root, expected = corpus
    state = tmp_path / "state.sqlite"
    report_path = tmp_path / "report.json"
    done = cvbulk("upload", str(root), "--project", "bad-corpus", "--create", "--tier", "unlimited",
                  "--state", str(state), "--report", str(report_path), env=cli_env(emu), cwd=tmp_path, timeout=80)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert integrity(state) == "ok"
    rows = journal_rows(state)
    tally = check_outcomes(rows, expected)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    failed = {f["path"]: f for f in report["failures"]}
    should_fail = {rel for rel, outcome in expected.items() if outcome == "rejected"}
    assert set(failed) == should_fail, set(failed) ^ should_fail
    assert all(_one_line(f["reason"]) for f in failed.values())
    assert report["counts"].get("rejected") == len(should_fail)

    async def in_project() -> int:
        async with training_client(emu) as client:
            (project,) = [p for p in await client.get_projects() if p.name == "bad-corpus"]
            return await client.get_image_count(project.id)

    count = anyio.run(in_project)
    sent_ok = sum(1 for r in rows.values() if r["status"] == "uploaded")
    assert count == sent_ok
    # A second run changes nothing and still says what failed.
    again = cvbulk("upload", str(root), "--project", "bad-corpus", "--tier", "unlimited",
                   "--state", str(state), "--report", str(report_path), env=cli_env(emu), cwd=tmp_path, timeout=60)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert anyio.run(in_project) == count
    measure("upload: bad-input corpus", files=len(expected), in_project=count, duplicates=0, lost=0, **tally)


async def test_a_file_that_vanishes_between_scan_and_read(emu, tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"bad": 2}, size=(32, 32), seed=4343)
    from tests.corpus import make_jpeg

    make_jpeg(root / VANISHING, (32, 32), seed=4344)
    state = tmp_path / "state.sqlite"
    async with training_client(emu) as client:
        with vanish_after_scan(root):
            result = await run_upload(client, UploadOptions(
                root=root, project="vanishing", create=True, state=state, report=tmp_path / "r.json",
                tier="unlimited"))
    assert not result.ok
    rows = journal_rows(state)
    assert rows[VANISHING]["status"] == "rejected" and _one_line(rows[VANISHING]["reason"])
    assert [f["path"] for f in result.report["failures"]] == [VANISHING]
    assert sorted(r["status"] for r in rows.values()) == ["rejected", "uploaded", "uploaded"]


def test_predict_the_bad_corpus(emu, corpus, tmp_path):
    root, expected = corpus
    out = tmp_path / "scores.csv"
    done = cvbulk("predict", str(root), "--project", emu.model, "--published-name", "prod", "--output", str(out),
                  "--tier", "unlimited", env=cli_env(emu), cwd=tmp_path, timeout=80)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    rows = {r["path"]: r for r in one_row_each(out, expected)}
    for rel, outcome in expected.items():
        row = rows[rel]
        if outcome in ("uploaded", "fixed", "duplicate"):
            assert row["status"] == "predicted" and row["top_tag"] in ("a", "b"), (rel, row)
        else:  # rejected by the checks, or a scan problem (loop, broken link): an error row with a reason
            assert row["status"] != "predicted" and _one_line(row["reason"]), (rel, row)
    report = json.loads(Path(str(out) + ".report.json").read_text(encoding="utf-8"))
    bad = {rel for rel, outcome in expected.items() if outcome in ("rejected", "skipped")}
    assert {f["path"] for f in report["failures"]} == bad
    # Resumed: nothing scored twice, the error rows stay single.
    again = cvbulk("predict", str(root), "--project", emu.model, "--published-name", "prod", "--output", str(out),
                   "--tier", "unlimited", env=cli_env(emu), cwd=tmp_path, timeout=60)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    one_row_each(out, expected)
    assert len(output_rows(out)) == len(expected)
