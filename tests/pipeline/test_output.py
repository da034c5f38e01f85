from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from cvbulk.pipeline.names import key_for
from cvbulk.pipeline.output import (
    CsvClassificationWriter,
    CsvDetectionWriter,
    JsonlWriter,
    OutputFileError,
    PredictionRow,
    escape_cell,
    existing_keys,
    format_number,
    open_prediction_writer,
    repair_torn_tail,
    unescape_cell,
)

TAGS = ["Hemlock", "Japanese_Cherry", "=cmd"]


def cls_preds(hemlock: float) -> list[dict]:
    return [
        {"tagName": "Hemlock", "tagId": "t1", "probability": hemlock},
        {"tagName": "Japanese_Cherry", "tagId": "t2", "probability": 1 - hemlock},
    ]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_classification_csv_roundtrip(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=False) as w:
        assert isinstance(w, CsvClassificationWriter)
        w.write(PredictionRow("Test/test_image.jpg", "predicted", None, cls_preds(0.98765432), None))
        w.write(PredictionRow('odd, "name"\nwith newline.jpg', "predicted", None, cls_preds(0.25), None))
        w.write(PredictionRow("bad.jpg", "rejected", "not an image:\n text file", None, None))
    rows = read_csv(out)
    assert rows[0] == ["path", "status", "reason", "top_tag", "top_probability", "Hemlock", "Japanese_Cherry", "'=cmd"]
    assert rows[1] == ["Test/test_image.jpg", "predicted", "", "Hemlock", "0.987654", "0.987654", "0.012346", ""]
    # A control character in a name is escaped as the scan's key has it: one line per record.
    assert rows[2][:5] == ['odd, "name"\\x0awith newline.jpg', "predicted", "", "Japanese_Cherry", "0.75"]
    assert rows[3] == ["bad.jpg", "rejected", "not an image: text file", "", "", "", "", ""]
    assert len(rows) == 4
    raw = out.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # plain UTF-8, no BOM
    # DictReader (what pandas-like readers do): every row has every column.
    with open(out, newline="", encoding="utf-8") as f:
        assert [r["top_tag"] for r in csv.DictReader(f)] == ["Hemlock", "Japanese_Cherry", ""]


def test_formula_escaping(tmp_path: Path) -> None:
    for text in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "'quoted"]:
        assert escape_cell(text).startswith("'")
        assert unescape_cell(escape_cell(text)) == text
    for text in ["-0.5", "+3", "1e-5", "plain.jpg", "dir/=x.jpg", ""]:
        assert escape_cell(text) == text == unescape_cell(text)
    out = tmp_path / "o.csv"
    with open_prediction_writer(out, tag_names=["@tag"], detect=False, append=False) as w:
        w.write(PredictionRow("=HYPERLINK(\"http://x\").jpg", "error", "-bad", [{"tagName": "@tag", "probability": 0.5}], None))
    rows = read_csv(out)
    assert rows[1][0] == "'=HYPERLINK(\"http://x\").jpg"
    assert rows[1][2] == "'-bad"
    assert rows[1][3] == "'@tag" and rows[1][4] == "0.5"
    assert existing_keys(out) == {"=HYPERLINK(\"http://x\").jpg"}  # unescaped back


def test_number_format() -> None:
    assert format_number(0.123456789) == "0.123457"
    assert format_number(1e-9) == "0"
    assert format_number(5e-6) == "0.000005"
    assert format_number(1.0) == "1"
    assert format_number(-0.5) == "-0.5"
    assert format_number(None) == "" and format_number(float("nan")) == ""


def test_detection_csv_one_row_per_box(tmp_path: Path) -> None:
    out = tmp_path / "det.csv"
    box = {"left": 0.1, "top": 0.2, "width": 0.3333333333, "height": 0.4}
    with open_prediction_writer(out, tag_names=["fork", "scissors"], detect=True, append=False) as w:
        assert isinstance(w, CsvDetectionWriter)
        w.write(PredictionRow("a.jpg", "predicted", None, [
            {"tagName": "fork", "tagId": "f", "probability": 0.9, "boundingBox": box},
            {"tagName": "scissors", "tagId": "s", "probability": 0.6, "boundingBox": box},
        ], None))
        w.write(PredictionRow("none.jpg", "predicted", None, [], None))
        w.write(PredictionRow("err.jpg", "error", "timeout", None, None))
    rows = read_csv(out)
    assert rows[0] == ["path", "status", "reason", "tag", "probability", "left", "top", "width", "height"]
    assert rows[1] == ["a.jpg", "predicted", "", "fork", "0.9", "0.1", "0.2", "0.333333", "0.4"]
    assert rows[2][3] == "scissors"
    assert rows[3] == ["none.jpg", "predicted", "", "", "", "", "", "", ""]
    assert rows[4] == ["err.jpg", "error", "timeout", "", "", "", "", "", ""]
    assert existing_keys(out) == {"a.jpg", "none.jpg", "err.jpg"}


def test_append_never_repeats_header(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=True) as w:
        w.write(PredictionRow("a.jpg", "predicted", None, cls_preds(0.9), None))
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=True) as w:
        w.write(PredictionRow("b.jpg", "predicted", None, cls_preds(0.1), None))
    rows = read_csv(out)
    assert [r[0] for r in rows] == ["path", "a.jpg", "b.jpg"]
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=False) as w:
        pass  # append=False starts afresh
    assert [r[0] for r in read_csv(out)] == ["path"]


def test_append_refuses_other_columns(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    open_prediction_writer(out, tag_names=["a"], detect=False, append=True).close()
    with pytest.raises(ValueError, match="columns"):
        open_prediction_writer(out, tag_names=["a", "b"], detect=False, append=True)


def test_torn_last_line_repaired(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=False) as w:
        for i in range(5):
            w.write(PredictionRow(f"img{i}.jpg", "predicted", None, cls_preds(0.5), None))
    whole = out.read_bytes()
    with open(out, "ab") as f:
        f.write(b"img5.jpg,predic")  # a write cut short by kill -9
    assert existing_keys(out) == {f"img{i}.jpg" for i in range(5)}
    assert out.read_bytes() == whole
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=True) as w:
        w.write(PredictionRow("img5.jpg", "predicted", None, cls_preds(0.5), None))
    rows = read_csv(out)
    assert [r[0] for r in rows[1:]] == [f"img{i}.jpg" for i in range(6)]
    assert all(len(r) == len(rows[0]) for r in rows)


def test_open_quote_after_a_newline_is_not_a_torn_row(tmp_path: Path) -> None:
    """Our records are one line each, so a quoted field left open across a newline is not a row we
    tore: the file is refused and left as it is (it used to be cut)."""
    out = tmp_path / "o.csv"
    with open_prediction_writer(out, tag_names=[], detect=False, append=False) as w:
        w.write(PredictionRow("a.jpg", "predicted", None, [], None))
    with open(out, "ab") as f:
        f.write(b'"multi\nline')
    before = out.read_bytes()
    with pytest.raises(OutputFileError, match="line 3"):
        existing_keys(out)
    assert out.read_bytes() == before


def test_torn_header_only(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    out.write_bytes(b"path,sta")
    assert existing_keys(out) == set()
    assert out.read_bytes() == b""
    with open_prediction_writer(out, tag_names=[], detect=False, append=True) as w:
        w.write(PredictionRow("a.jpg", "predicted", None, [], None))
    assert read_csv(out)[0][0] == "path"


def test_writer_repairs_on_append_without_existing_keys(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_bytes(b'{"path":"a.jpg","status":"predicted"}\n{"path":"b.j')
    assert repair_torn_tail(out)
    assert not repair_torn_tail(out)
    assert out.read_bytes() == b'{"path":"a.jpg","status":"predicted"}\n'


def test_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "o.ndjson"
    preds = cls_preds(0.7)
    with open_prediction_writer(out, tag_names=TAGS, detect=False, append=True) as w:
        assert isinstance(w, JsonlWriter)
        w.write(PredictionRow("=a.jpg", "predicted", None, preds, {"iteration": "it-1"}))
        w.write(PredictionRow("ü/b.jpg", "rejected", "too\nwide", None, None))
    lines = out.read_text(encoding="utf-8").splitlines()
    first, second = (json.loads(x) for x in lines)
    assert first == {
        "path": "=a.jpg", "status": "predicted", "reason": None, "top_tag": "Hemlock",
        "top_probability": 0.7, "predictions": preds, "extra": {"iteration": "it-1"},
    }
    assert second["path"] == "ü/b.jpg" and second["reason"] == "too wide" and second["predictions"] == []
    with open(out, "ab") as f:
        f.write(b'{"path": "c.jp')
    assert existing_keys(out) == {"=a.jpg", "ü/b.jpg"}
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_existing_keys_missing_file(tmp_path: Path) -> None:
    assert existing_keys(tmp_path / "nope.csv") == set()


def test_undecodable_file_name_round_trips(tmp_path: Path) -> None:
    name = b"caf\xe9.jpg".decode("utf-8", errors="surrogateescape")
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"o{suffix}"
        with open_prediction_writer(out, tag_names=[], detect=False, append=False) as w:
            w.write(PredictionRow(name, "predicted", None, [], None))
        out.read_bytes().decode("utf-8")  # valid UTF-8: the name went through its key form
        assert existing_keys(out) == {key_for(name)} == {"caf\\xe9.jpg"}


def test_flush_by_rows_and_by_time(tmp_path: Path) -> None:
    now = [0.0]
    out = tmp_path / "o.csv"
    w = CsvClassificationWriter(out, tag_names=[], append=False, flush_rows=3, flush_seconds=5.0, clock=lambda: now[0])
    header_only = out.stat().st_size
    w.write(PredictionRow("a", "predicted"))
    w.write(PredictionRow("b", "predicted"))
    assert out.stat().st_size == header_only  # still buffered
    w.write(PredictionRow("c", "predicted"))
    assert len(read_csv(out)) == 4  # third row: flushed by count
    w.write(PredictionRow("d", "predicted"))
    assert len(read_csv(out)) == 4
    now[0] = 6.0
    w.write(PredictionRow("e", "predicted"))
    assert len(read_csv(out)) == 6  # flushed by time
    w.write(PredictionRow("f", "predicted"))
    w.close()
    w.close()
    assert len(read_csv(out)) == 7
    with pytest.raises(ValueError):
        w.write(PredictionRow("g", "predicted"))


def test_writer_speed(tmp_path: Path) -> None:
    tags = [f"tag{i}" for i in range(20)]
    preds = [{"tagName": t, "tagId": t, "probability": 1 / (i + 2)} for i, t in enumerate(tags)]
    n = 20_000
    for name in ("o.csv", "o.jsonl"):
        out = tmp_path / name
        # CPU seconds, not wall: on a shared machine (make test runs a worker a core) the wall clock measures
        # the neighbours too
        t0 = time.process_time()
        with open_prediction_writer(out, tag_names=tags, detect=False, append=False) as w:
            for i in range(n):
                w.write(PredictionRow(f"dir/img_{i:06d}.jpg", "predicted", None, preds, None))
        rate = n / max(time.process_time() - t0, 1e-3)
        print(f"\n{name}: {rate:,.0f} rows/CPU-s")
        t0 = time.perf_counter()
        assert len(existing_keys(out)) == n
        print(f"{name}: existing_keys {n / (time.perf_counter() - t0):,.0f} rows/s")
        assert rate > 2_000  # generous floor: never the bottleneck at 20 predictions/s


def test_prediction_objects_with_to_json(tmp_path: Path) -> None:
    class Pred:
        def to_json(self) -> dict:
            return {"tagName": "Hemlock", "tagId": "t1", "probability": 0.8}

    out = tmp_path / "o.csv"
    with open_prediction_writer(out, tag_names=["Hemlock"], detect=False, append=False) as w:
        w.write(PredictionRow("a.jpg", "predicted", None, [Pred()], None))
        with pytest.raises(TypeError):
            w.write(PredictionRow("b.jpg", "predicted", None, [object()], None))
    assert read_csv(out)[1] == ["a.jpg", "predicted", "", "Hemlock", "0.8", "0.8"]


def test_failed_write_keeps_only_unwritten_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os as os_module

    out = tmp_path / "o.csv"
    w = open_prediction_writer(out, tag_names=[], detect=False, append=False, flush_rows=100)
    for i in range(3):
        w.write(PredictionRow(f"é{i}.jpg", "predicted"))
    real_write = os_module.write
    calls = []

    def short_then_fail(fd: int, data) -> int:
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:1]))  # a short write, cut inside "é"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os_module, "write", short_then_fail)
    with pytest.raises(OSError):
        w.flush()
    monkeypatch.setattr(os_module, "write", real_write)
    w.write(PredictionRow("é3.jpg", "predicted"))
    w.close()
    assert [r[0] for r in read_csv(out)] == ["path", "é0.jpg", "é1.jpg", "é2.jpg", "é3.jpg"]


_CHILD = """
import sys
from cvbulk.pipeline.output import PredictionRow, open_prediction_writer
preds = [{"tagName": f"t{k}", "tagId": str(k), "probability": 0.1 * k} for k in range(5)]
w = open_prediction_writer(sys.argv[1], tag_names=[f"t{k}" for k in range(5)], detect=sys.argv[2] == "1",
                           append=True, flush_rows=7)
for i in range(1_000_000):
    w.write(PredictionRow(f"dir/img {i:07d}.jpg", "predicted", None, preds, None))
    if w.rows % 7 == 0:
        print(w.rows, flush=True)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,detect", [("o.csv", False), ("det.csv", True), ("o.jsonl", False)])
def test_kill_9_then_resume_gives_one_row_per_image(tmp_path: Path, name: str, detect: bool) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys

    out = tmp_path / name
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), "1" if detect else "0"],
                             stdout=subprocess.PIPE, env=env, text=True)
    try:
        for _ in range(random.randrange(5, 300)):
            assert child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    done = existing_keys(out)
    wanted = [f"dir/img {i:07d}.jpg" for i in range(len(done) + 50)]
    preds = [{"tagName": "t1", "tagId": "1", "probability": 0.5}]
    with open_prediction_writer(out, tag_names=[f"t{k}" for k in range(5)], detect=detect, append=True) as w:
        for path in wanted:
            if path not in done:
                w.write(PredictionRow(path, "predicted", None, preds, None))
    if name.endswith(".jsonl"):
        paths = [json.loads(line)["path"] for line in out.read_text(encoding="utf-8").splitlines()]
    else:
        rows = read_csv(out)
        assert all(len(r) == len(rows[0]) for r in rows)
        paths = [r[0] for r in rows[1:]]
        if detect:  # 5 boxes per image before the kill, 1 after: an image's boxes are never split
            per_image = Counter(paths)
            assert all(n == (5 if p in done else 1) for p, n in per_image.items())
            paths = list(dict.fromkeys(paths))
    assert paths == wanted
