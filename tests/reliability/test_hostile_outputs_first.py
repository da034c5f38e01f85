"""Issue 17, "Never hang, fail fast": an unwritable ``--report`` or ``--state`` is found before any request,
with one line naming the path (before the fix: after all the work, or as "unexpected OperationalError");
and a damaged state file, a label file nested too deeply, a COCO category with an empty name each end with
their own one-line message and exit status 2 (before: "unexpected" errors with exit 3).

The endpoint of these runs refuses connections: had cvbulk sent a request first, it would have ended with
"connection refused" (exit 3), not with the message about the file.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from cvbulk.pipeline.engine import check_outputs
from cvbulk.pipeline.errors import ConfigError, StateFileError
from tests.corpus import make_jpeg

from .conftest import cli_env, cvbulk

pytestmark = pytest.mark.timeout(60)


def _refused_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _env() -> dict[str, str]:
    return cli_env(None, VISION_TRAINING_ENDPOINT=_refused_endpoint(), VISION_TRAINING_KEY="k" * 32)


def _upload(tmp_path: Path, *extra: str):
    root = tmp_path / "img"
    if not root.exists():
        make_jpeg(root / "cat" / "a.jpg", (16, 16), seed=1)
    return cvbulk("upload", str(root), "--project", "p", "--create", "--tier", "unlimited", *extra,
                  env=_env(), cwd=tmp_path, timeout=30)


def _one_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize("what", ["report", "state"])
def test_an_output_under_a_file_fails_before_any_request(tmp_path, what):
    (tmp_path / "file.txt").write_text("not a folder")
    target = tmp_path / "file.txt" / f"out.{what}"
    done = _upload(tmp_path, f"--{what}", str(target))
    assert done.returncode == 2
    line = _one_line(done)
    assert str(target) in line and "is not a folder" in line and "refused" not in line


@pytest.mark.parametrize("what", ["report", "state"])
def test_an_output_that_is_a_folder_fails_before_any_request(tmp_path, what):
    (tmp_path / "taken").mkdir()
    done = _upload(tmp_path, f"--{what}", str(tmp_path / "taken"))
    assert done.returncode == 2
    assert "it is a folder" in _one_line(done)


def test_a_damaged_state_file_is_refused_untouched_before_any_request(tmp_path):
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"this is not SQLite at all\n" * 10)
    before = state.read_bytes()
    done = _upload(tmp_path, "--state", str(state))
    assert done.returncode == 2
    line = _one_line(done)
    assert str(state) in line and "not a cvbulk state file" in line and "--state" in line
    assert state.read_bytes() == before


def test_a_torn_sqlite_state_file_is_a_state_file_error(tmp_path):
    from cvbulk.pipeline.journal import Journal

    state = tmp_path / "state.sqlite"
    with Journal.open(state, job="upload", fingerprint={"root": "x"}):
        pass
    data = state.read_bytes()
    state.write_bytes(data[:100] + b"\xff" * (len(data) - 100))  # the header survives, the pages do not
    with pytest.raises(StateFileError, match="not a cvbulk state file"):
        Journal.open(state, job="upload", fingerprint={"root": "x"})


def test_check_outputs_names_the_path_of_each_kind(tmp_path):
    (tmp_path / "f").write_text("x")
    for kw in ("report", "state", "output"):
        with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "f" / "x"))):
            check_outputs(**{kw: tmp_path / "f" / "x"})
    # predict's output: a file cvbulk did not write is refused, never touched
    theirs = tmp_path / "theirs.csv"
    theirs.write_text('name,"unclosed\n1,2\n')
    with pytest.raises(ConfigError, match=r"theirs\.csv"):
        check_outputs(output=theirs)
    check_outputs(report=tmp_path / "new" / "deep" / "r.json", state=tmp_path / "s.sqlite")  # creatable: fine


def test_a_label_file_nested_too_deeply_is_its_own_error(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text("[" * 100_000 + "]" * 100_000)
    done = _upload(tmp_path, "--labels", str(labels))
    assert done.returncode == 2
    line = _one_line(done)
    assert "labels.json" in line and "nested" in line


def test_an_empty_coco_category_name_is_its_own_error(tmp_path):
    labels = tmp_path / "coco.json"
    labels.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "cat/a.jpg", "width": 16, "height": 16}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 8, 8]}],
        "categories": [{"id": 7, "name": ""}],
    }))
    done = _upload(tmp_path, "--labels", str(labels))
    assert done.returncode == 2
    line = _one_line(done)
    assert "coco.json: categories[0] (id 7): a tag name is empty" in line
