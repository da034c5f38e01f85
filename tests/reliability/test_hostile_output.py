"""Issue 17, "Data loss": ``predict --output FILE`` on a file cvbulk did not write, or cannot read back.

Before the fix, ``existing_keys`` and ``open_prediction_writer(append=True)`` parsed what they could and
truncated the rest: a user's CSV with an unclosed quote early on lost every row after it, a JSONL file named
``.csv`` or a binary file was cut to nothing, and the run exited 0. Each test below failed on that code
(the file changed); now the file is refused with :class:`OutputFileError` and stays byte for byte the same.
The last tests keep what must still work: a torn last row of our own file is repaired, and what cvbulk
writes is valid UTF-8 whatever the file names.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path

import pytest

from cvbulk.pipeline.output import (
    CLASSIFICATION_COLUMNS,
    OutputFileError,
    PredictionRow,
    check_output_file,
    existing_keys,
    open_prediction_writer,
    repair_torn_tail,
)
from cvbulk.pipeline.scan import ScanEntry, scan_tree
from tests.corpus import make_jpeg

from .conftest import cli_env, cvbulk, published_emulator

pytestmark = pytest.mark.timeout(90)

OUR_HEADER = ",".join(CLASSIFICATION_COLUMNS) + ",a,b\r\n"
ROWS = "".join(f"img{i}.jpg,predicted,,a,0.9,0.9,0.1\r\n" for i in range(2000))


def _hostile_files() -> dict[str, bytes]:
    """name -> content of files cvbulk must never modify."""
    rng = random.Random(17)
    jsonl = "".join(json.dumps({"path": f"img{i}.jpg", "status": "predicted"}) + "\n" for i in range(50))
    return {
        # Our header, then an unclosed quote early on, then thousands of the user's rows.
        "unclosed_quote.csv": (OUR_HEADER + 'img0.jpg,predicted,"oops,a,0.9,0.9,0.1\r\n' + ROWS).encode(),
        # The same, ending without a newline (it used to be "repaired" down to the header).
        "unclosed_quote_no_eol.csv": (OUR_HEADER + '"x,' + ROWS + "y" * 100).encode(),
        # A JSONL file with a .csv name.
        "jsonl_named.csv": jsonl.encode(),
        # A CSV named .jsonl.
        "csv_named.jsonl": (OUR_HEADER + ROWS).encode(),
        # Binary: random bytes with NULs, and a PNG signature.
        "random.csv": rng.randbytes(5000),
        "random.jsonl": rng.randbytes(5000),
        "image.csv": b"\x89PNG\r\n\x1a\n" + rng.randbytes(3000),
        # A spreadsheet of the user's (not our header), with and without a final newline.
        "contacts.csv": b"name,email,phone\r\nAda,ada@example.org,1\r\nBob,bob@example.org,2\r\n",
        "contacts_no_eol.csv": b"name,email,phone\r\nAda,ada@example.org,1",
        "one_line_no_eol.csv": b"hello world",
        # Our header, but a row of another width in the middle.
        "ragged.csv": (OUR_HEADER + "img0.jpg,predicted\r\n" + ROWS).encode(),
        # JSONL lines that are not records of ours.
        "array_line.jsonl": (jsonl + "[1, 2, 3]\n" + jsonl).encode(),
        "foreign_object.jsonl": b'{"id": 1, "name": "x"}\n{"id": 2, "name": "y"}\n',
        "bad_json_mid.jsonl": (jsonl + '{"path": "x.jpg", "status": \n' + jsonl).encode(),
        "not_json_no_eol.jsonl": b"just some text",
        # A CSV whose records span lines (an editor's export with quoted newlines).
        "multiline.csv": (OUR_HEADER + 'img0.jpg,predicted,"two\nlines",a,0.9,0.9,0.1\r\n' + ROWS).encode(),
    }


@pytest.mark.parametrize("name", sorted(_hostile_files()))
def test_file_not_ours_is_refused_and_untouched(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    content = _hostile_files()[name]
    path.write_bytes(content)
    mtime = path.stat().st_mtime_ns
    for attempt in (
        lambda: existing_keys(path),
        lambda: repair_torn_tail(path),
        lambda: check_output_file(path),
        lambda: open_prediction_writer(path, tag_names=["a", "b"], detect=False, append=True),
        lambda: open_prediction_writer(path, tag_names=["a", "b"], detect=True, append=True),
        # append=False would truncate: a file that is not ours is refused then too.
        lambda: open_prediction_writer(path, tag_names=["a", "b"], detect=False, append=False),
    ):
        with pytest.raises(OutputFileError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and name in message
        assert "choose another --output or move the file away" in message
        assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do
        assert path.read_bytes() == content, "the file was modified"
    assert path.stat().st_mtime_ns == mtime


def test_other_tag_columns_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    with open_prediction_writer(path, tag_names=["a", "b"], detect=False, append=False) as w:
        w.write(PredictionRow("x.jpg", "predicted", None, [{"tagName": "a", "probability": 0.5}]))
    before = path.read_bytes()
    with pytest.raises(OutputFileError, match="columns"):
        open_prediction_writer(path, tag_names=["a", "c"], detect=False, append=True)
    assert path.read_bytes() == before


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_torn_last_row_of_our_own_file_is_still_repaired(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"o{suffix}"
    with open_prediction_writer(path, tag_names=["a"], detect=False, append=False) as w:
        for i in range(3):
            w.write(PredictionRow(f"{i}.jpg", "predicted", None, [{"tagName": "a", "probability": 0.5}]))
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(whole.splitlines(keepends=True)[-1][:-7])  # kill -9 in the middle of a row
    assert existing_keys(path) == {"0.jpg", "1.jpg", "2.jpg"}
    assert path.read_bytes() == whole
    with open(path, "ab") as f:
        f.write(b'{"path":"3.j' if suffix == ".jsonl" else b"3.jpg,predi")
    with open_prediction_writer(path, tag_names=["a"], detect=False, append=True) as w:
        w.write(PredictionRow("3.jpg", "predicted", None, []))
    assert existing_keys(path) == {"0.jpg", "1.jpg", "2.jpg", "3.jpg"}


def test_torn_header_of_our_own_file_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(b"path,status,rea")  # killed while writing the header
    assert existing_keys(path) == set()
    assert path.read_bytes() == b""


def _non_utf8_tree(root: Path) -> Path:
    root.mkdir()
    raw = os.fsencode(root) + b"/caf\xe9 =SUM(1).jpg"
    make_jpeg(Path(os.fsdecode(raw)), (16, 16), 5)
    make_jpeg(root / "plain.jpg", (16, 16), 6)
    return root


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_output_is_valid_utf8_and_keys_match_the_scan(tmp_path: Path, suffix: str) -> None:
    """Before: a non-UTF-8 name was written as its raw byte (the CSV was not UTF-8)."""
    root = _non_utf8_tree(tmp_path / "tree")
    entries = [e for e in scan_tree(root) if isinstance(e, ScanEntry)]
    out = tmp_path / f"o{suffix}"
    with open_prediction_writer(out, tag_names=["=tag"], detect=False, append=False) as w:
        for e in entries:
            w.write(PredictionRow(e.relpath, "predicted", "line one\nline two\x1b[2J", []))
        # A raw name (not a key) given by mistake is made valid UTF-8 too.
        w.write(PredictionRow(os.fsdecode(b"raw\xff.jpg"), "predicted"))
    text = out.read_bytes().decode("utf-8")  # strict: raises on anything that is not UTF-8
    assert "\x1b" not in text
    assert existing_keys(out) == {e.relpath for e in entries} | {"raw\\xff.jpg"}
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][-1] == "'=tag"  # a formula stays escaped
        assert all(len(r) == len(rows[0]) for r in rows)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with published_emulator(tmp_path_factory, "hostile-output", seed=17) as emu:
        yield emu


def test_predict_refuses_a_foreign_output_file(emu, tmp_path: Path) -> None:
    """End to end: ``cvbulk predict --output`` on a user's CSV with an unclosed quote exits non-zero with
    one line naming the file, and the file keeps every row (before: cut to the header, exit 0)."""
    root = _non_utf8_tree(tmp_path / "tree")
    out = tmp_path / "mine.csv"
    content = _hostile_files()["unclosed_quote.csv"]
    out.write_bytes(content)
    done = cvbulk("predict", str(root), "--project", emu.model, "--published-name", "prod", "--output", str(out),
                  "--tier", "unlimited", env=cli_env(emu), cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "mine.csv" in done.stderr and "Traceback" not in done.stderr
    assert out.read_bytes() == content


def test_predict_writes_valid_utf8_for_an_undecodable_name(emu, tmp_path: Path) -> None:
    """End to end: a name that is not UTF-8 gets its row, and the CSV is UTF-8 (before: raw bytes)."""
    root = _non_utf8_tree(tmp_path / "tree")
    out = tmp_path / "o.csv"
    done = cvbulk("predict", str(root), "--project", emu.model, "--published-name", "prod", "--output", str(out),
                  "--tier", "unlimited", env=cli_env(emu), cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8"))))
    paths = sorted(r[0] for r in rows[1:])
    assert paths == ["caf\\xe9 =SUM(1).jpg", "plain.jpg"]
    assert all(r[1] == "predicted" for r in rows[1:])
