"""``cvbulk predict`` re-scores an image whose file changed since its row was written, and keeps one row per path
(the newest), even when a run is killed between appending the new row and compacting the output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cvbulk.pipeline import _predict_resume
from cvbulk.pipeline._predict_resume import PredictResume, compact_output, mark_path
from cvbulk.pipeline.predict import default_state_path, run_predict
from tests.pipeline.test_predict import FakePrediction, _csv_rows, _jpeg, _options, make_tree

pytestmark = pytest.mark.timeout(60)


def _replace(path: Path, data: bytes) -> None:
    """New content, and an mtime that surely differs from the one the journal holds."""
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _rows_by_path(out: Path) -> dict[str, list[bytes]]:
    jsonl = out.suffix == ".jsonl"
    by: dict[str, list[bytes]] = {}
    for line in _lines(out)[0 if jsonl else 1 :]:
        by.setdefault(_predict_resume._row_path(line, jsonl), []).append(line)
    return by


async def _fresh_row(tmp_path: Path, data: bytes, out_name: str, **kw) -> list[bytes]:
    """The row(s) a first run writes for an image with these bytes (the fake's answer depends on them only)."""
    root = tmp_path / "fresh"
    root.mkdir(exist_ok=True)
    (root / "one.jpg").write_bytes(data)
    out = tmp_path / f"fresh-{out_name}"
    assert (await run_predict(FakePrediction(), None, _options(root, out, **kw))).ok
    row = _lines(out)[-1 if out.suffix == ".jsonl" else 1 :]
    return [line.replace(b"one.jpg", b"@@") for line in row]


@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
async def test_a_file_changed_between_runs_is_scored_again_and_keeps_one_row(tmp_path, out_name):
    root = tmp_path / "tree"
    paths = make_tree(root, 12)
    out = tmp_path / out_name
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    before = _rows_by_path(out)
    changed = paths[5]
    _replace(root / changed, _jpeg(99))

    again = FakePrediction()
    result = await run_predict(again, None, _options(root, out))
    assert result.ok and again.calls == 1
    assert result.report["counts"] == {"predicted": 1}  # this run's outcome
    assert result.report["extra"]["rescored_changed"] == 1
    assert result.report["extra"]["already_done"] == 11
    after = _rows_by_path(out)
    assert sorted(after) == sorted(paths) and all(len(rows) == 1 for rows in after.values())
    # The changed image's row is the new score, appended; every other row is byte for byte what it was.
    expected = [line.replace(b"@@", changed.encode()) for line in await _fresh_row(tmp_path, _jpeg(99), out_name)]
    assert after[changed] == expected != before[changed]
    assert _lines(out)[-1] == expected[-1]
    kept = [line for line in _lines(out) if line not in expected]
    assert kept == [line for line in _lines_before(before, out) if line not in before[changed]]
    assert not mark_path(out).exists()

    # Unchanged since: nothing is scored.
    third = FakePrediction()
    result = await run_predict(third, None, _options(root, out))
    assert third.calls == 0 and result.report["extra"]["rescored_changed"] == 0


def _lines_before(before: dict[str, list[bytes]], out: Path) -> list[bytes]:
    header = [] if out.suffix == ".jsonl" else _lines(out)[:1]
    return header + [line for rows in before.values() for line in rows]


async def test_detection_rows_of_a_rescored_image_go_together_even_when_last_and_first(tmp_path):
    """The image whose rows end the file is the first one written again: its old boxes still go, as a group."""
    root = tmp_path / "tree"
    make_tree(root, 5)
    out = tmp_path / "boxes.csv"
    assert (await run_predict(FakePrediction(), None, _options(root, out, detect=True, top=2))).ok
    rows = _csv_rows(out)
    assert len(rows) == 10
    last = rows[-1]["path"]  # its two rows end the file; the run below writes its new two first
    _replace(root / last, _jpeg(51))
    again = FakePrediction()
    result = await run_predict(again, None, _options(root, out, detect=True, top=2))
    assert again.calls == 1 and result.report["extra"]["rescored_changed"] == 1
    rows = _csv_rows(out)
    assert len(rows) == 10 and sum(r["path"] == last for r in rows) == 2
    fresh = await _fresh_row(tmp_path, _jpeg(51), "boxes.csv", detect=True, top=2)
    assert _lines(out)[-2:] == [line.replace(b"@@", last.encode()) for line in fresh]
    assert rows[-3]["path"] != last


@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
async def test_a_run_killed_before_compacting_leaves_one_row_after_the_next_run(tmp_path, monkeypatch, out_name):
    root = tmp_path / "tree"
    paths = make_tree(root, 8)
    out = tmp_path / out_name
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    changed = paths[2]
    _replace(root / changed, _jpeg(77))
    (root / "new.jpg").write_bytes(_jpeg(78))  # a new image is appended in the same run

    async def killed(self) -> int:  # the process dies once the rows are out, before the compaction
        return 0

    with monkeypatch.context() as m:
        m.setattr(PredictResume, "finish", killed)
        result = await run_predict(FakePrediction(), None, _options(root, out))
    assert result.report["extra"]["rescored_changed"] == 1
    assert len(_rows_by_path(out)[changed]) == 2 and mark_path(out).exists()
    newest = _rows_by_path(out)[changed][-1]
    # ... and a compaction killed before its rename left its temporary file.
    left = tmp_path / f".{out_name}.x1y2.compacting"
    left.write_bytes(b"half")

    third = FakePrediction()
    result = await run_predict(third, None, _options(root, out))
    assert third.calls == 0 and result.ok  # nothing to score: the start compacts
    by = _rows_by_path(out)
    assert sorted(by) == sorted([*paths, "new.jpg"]) and all(len(rows) == 1 for rows in by.values())
    assert by[changed] == [newest]
    assert not mark_path(out).exists() and not left.exists()


async def test_a_run_stopped_by_a_run_wide_error_still_keeps_one_row_per_path(tmp_path):
    from cvbulk.client._errors import NotFoundError

    root = tmp_path / "tree"
    paths = make_tree(root, 6)
    out = tmp_path / "out.csv"
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    for i, rel in enumerate(paths[:3]):
        _replace(root / rel, _jpeg(90 + i))
    with pytest.raises(NotFoundError):  # the first re-score lands, then the published iteration is gone
        await run_predict(FakePrediction(fail_after=1), None, _options(root, out, max_concurrency=1))
    by = _rows_by_path(out)
    assert sorted(by) == sorted(paths) and all(len(rows) == 1 for rows in by.values())
    assert not mark_path(out).exists()
    again = FakePrediction()
    result = await run_predict(again, None, _options(root, out))
    assert again.calls == 2 and result.report["extra"]["rescored_changed"] == 2


async def test_a_mark_left_after_the_compaction_renamed_is_stale_and_changes_nothing(tmp_path):
    """Killed after the rename, before the mark went: the mark names the old file (its inode), so it is dropped."""
    root = tmp_path / "tree"
    make_tree(root, 6)
    out = tmp_path / "out.csv"
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    gone = tmp_path / "old"
    gone.write_bytes(b"x")
    mark_path(out).write_text(json.dumps({"inode": gone.stat().st_ino, "offset": 10}))
    data = out.read_bytes()
    again = FakePrediction()
    assert (await run_predict(again, None, _options(root, out))).ok
    assert again.calls == 0 and out.read_bytes() == data and not mark_path(out).exists()


async def test_a_rescore_that_meets_a_transient_error_keeps_the_old_row_and_retries(tmp_path):
    root = tmp_path / "tree"
    paths = make_tree(root, 5)
    out = tmp_path / "out.csv"
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    old = _rows_by_path(out)[paths[1]]
    _replace(root / paths[1], _jpeg(60))
    flaky = FakePrediction(transient={1, 2, 3, 4, 5, 6, 7, 8})  # past the retry budget: "error", no row
    result = await run_predict(flaky, None, _options(root, out))
    assert not result.ok and result.report["counts"] == {"error": 1}
    assert _rows_by_path(out)[paths[1]] == old  # never lose a row
    again = FakePrediction()
    result = await run_predict(again, None, _options(root, out))
    assert result.ok and again.calls == 1 and len(_rows_by_path(out)[paths[1]]) == 1
    assert _rows_by_path(out)[paths[1]] != old


async def test_a_row_the_journal_does_not_know_stays_done(tmp_path):
    """A row written by a run killed before it journalled: nothing to compare with, so it is not scored again."""
    root = tmp_path / "tree"
    make_tree(root, 3)
    out = tmp_path / "out.csv"
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    default_state_path(out).unlink()
    again = FakePrediction()
    result = await run_predict(again, None, _options(root, out))
    assert again.calls == 0 and result.report["extra"]["already_done"] == 3


# -- compact_output by itself ---------------------------------------------------------------------


def test_compact_keeps_the_header_awkward_cells_and_a_torn_tail(tmp_path):
    out = tmp_path / "o.csv"
    lines = [
        b"path,status,reason,top_tag,top_probability,a\r\n",
        b"path,predicted,,a,0.5,0.5\r\n",  # an image named like the header's first cell
        b"'=x.jpg,predicted,,a,0.1,0.1\r\n",
        b'"c, d.jpg",predicted,,a,0.2,0.2\r\n',
        b"e.jpg,predicted,,a,0.3,0.3\r\n",
    ]
    after = [b"'=x.jpg,predicted,,a,0.9,0.9\r\n", b'"c, d.jpg",rejected,gone,,,\r\n', b"path,predicted,,a,0.6,0.6\r\n"]
    out.write_bytes(b"".join(lines + after) + b"f.jpg,pred")
    offset = len(b"".join(lines))
    assert compact_output(out, offset, only={"=x.jpg", "c, d.jpg"}) == 2
    assert out.read_bytes() == b"".join([lines[0], lines[1], lines[4], *after]) + b"f.jpg,pred"
    assert compact_output(out, len(b"".join([lines[0], lines[1], lines[4]]))) == 1  # any path after the offset
    assert _lines(out)[:2] == [lines[0], lines[4]]


def test_compact_jsonl_and_nothing_to_remove_leaves_the_file_alone(tmp_path):
    out = tmp_path / "o.jsonl"
    rows = [json.dumps({"path": p, "status": "predicted", "n": i}).replace(" ", "").encode() + b"\n"
            for i, p in enumerate(["a.jpg", 'q"uote.jpg', "b.jpg", 'q"uote.jpg'])]
    out.write_bytes(b"".join(rows))
    inode = out.stat().st_ino
    assert compact_output(out, len(rows[0] + rows[1] + rows[2]), only={"b.jpg"}) == 0
    assert out.stat().st_ino == inode  # not rewritten
    assert compact_output(out, len(rows[0] + rows[1] + rows[2])) == 1
    assert out.read_bytes() == rows[0] + rows[2] + rows[3]
    assert not list(tmp_path.glob(".*compacting"))
