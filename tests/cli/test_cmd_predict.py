"""``cvbulk predict`` from the command line: flags -> options -> client -> CSV/report, exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from cvbulk.cli import main

pytestmark = pytest.mark.timeout(60)

PROJECT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SECRET = "prediction-secret-0123456789abcdef"
CLASSIFY = f"/customvision/v3.0/prediction/{PROJECT_ID}/classify/iterations/prod/image/nostore"


class FakeService:
    """A minimal prediction endpoint on 127.0.0.1 in its own thread (main() runs its own event loop).

    It answers ``status`` with ``payload`` for the classify-without-store path and checks the key;
    the emulator-backed tests in tests/pipeline/test_predict.py cover the real service.
    """

    def __init__(self) -> None:
        self.status = 200
        self.payload: dict = {}
        self.requests = 0
        self.endpoint = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _classify(self, request: web.Request) -> web.Response:
        self.requests += 1
        await request.read()
        if request.headers.get("Prediction-Key") != SECRET:
            return web.json_response({"error": {"code": "401", "message": "Access denied"}}, status=401)
        return web.json_response(self.payload, status=self.status)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post(CLASSIFY, self._classify)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> FakeService:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def service() -> Iterator[FakeService]:
    with FakeService() as svc:
        yield svc


@pytest.fixture(autouse=True)
def _no_vision_env(monkeypatch):
    for name in (
        "VISION_TRAINING_ENDPOINT",
        "VISION_TRAINING_KEY",
        "VISION_PREDICTION_ENDPOINT",
        "VISION_PREDICTION_KEY",
        "VISION_PREDICTION_RESOURCE_ID",
    ):
        monkeypatch.delenv(name, raising=False)


def _tree(root: Path, n: int) -> None:
    for i in range(n):
        path = root / f"sub{i % 2}" / f"img_{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), (i * 20 % 256, 90, 160)).save(buf, "JPEG")
        path.write_bytes(buf.getvalue())
    (root / "notes.jpg").write_text("a text file named .jpg\n")


def _answer(hemlock: float) -> dict:
    return {
        "id": "b1",
        "project": PROJECT_ID,
        "iteration": "it-1",
        "created": "2026-01-01T00:00:00Z",
        "predictions": [
            {"probability": hemlock, "tagId": "t1", "tagName": "Hemlock"},
            {"probability": 1 - hemlock, "tagId": "t2", "tagName": "Japanese_Cherry"},
        ],
    }


def _argv(root: Path, out: Path, *extra: str, endpoint: str = "http://127.0.0.1:9") -> list[str]:
    return [
        "predict", str(root), "--project", PROJECT_ID, "--published-name", "prod",
        "--prediction-endpoint", endpoint, "--prediction-key", SECRET,
        "--output", str(out), "--tier", "unlimited", *extra,
    ]


def test_predict_cli_writes_csv_report_and_json(tmp_path, capsys, service):
    root = tmp_path / "dump"
    _tree(root, 6)
    out = tmp_path / "scores.csv"
    service.payload = _answer(0.875)
    code = main(_argv(root, out, "--json", endpoint=service.endpoint))
    captured = capsys.readouterr()
    assert code == 1  # notes.jpg is not an image
    report = json.loads(captured.out)
    assert report["counts"] == {"predicted": 6, "rejected": 1}
    assert report["failures"][0]["path"] == "notes.jpg" and report["failures"][0]["reason"]
    assert "images/s" in captured.err  # the summary table

    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and len({r["path"] for r in rows}) == 7
    good = [r for r in rows if r["status"] == "predicted"]
    assert all(r["top_tag"] == "Hemlock" and float(r["Hemlock"]) == 0.875 for r in good)
    assert float(good[0]["Japanese_Cherry"]) == 0.125

    # Keys never land in an artefact of the run.
    for artefact in (out, tmp_path / "scores.csv.report.json", tmp_path / "scores.csv.state"):
        assert artefact.exists()
        assert SECRET.encode() not in artefact.read_bytes()
    assert SECRET not in captured.out + captured.err


def test_predict_cli_project_name_needs_training_credentials(tmp_path, capsys):
    root = tmp_path / "dump"
    _tree(root, 1)
    argv = _argv(root, tmp_path / "o.csv")
    argv[argv.index(PROJECT_ID)] = "my birds"
    assert main(argv) == 2
    assert "not a project id" in capsys.readouterr().err


def test_predict_cli_usage_errors(tmp_path, capsys):
    root = tmp_path / "dump"
    _tree(root, 1)
    assert main(_argv(tmp_path / "missing", tmp_path / "o.csv")) == 2
    assert main(_argv(root, tmp_path / "o.csv", "--tps", "0")) == 2
    argv = _argv(root, tmp_path / "o.csv")
    del argv[argv.index("--prediction-key") : argv.index("--prediction-key") + 2]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no prediction key" in err and "Traceback" not in err


def test_predict_cli_wrong_key_is_fatal_and_says_so_once(tmp_path, capsys, service):
    root = tmp_path / "dump"
    _tree(root, 40)
    argv = _argv(root, tmp_path / "o.csv", "--max-concurrency", "4", endpoint=service.endpoint)
    argv[argv.index(SECRET)] = "a-wrong-key-9876543210"
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("cvbulk: error:") == 1 and "a-wrong-key-9876543210" not in err
    assert service.requests < 40  # the run stopped at the first answer instead of trying every image


def test_predict_cli_against_the_emulator_by_project_name(tmp_path, monkeypatch, capsys):
    """The whole command on the real emulator, with the VISION_* variables of Azure's quickstarts."""
    import anyio

    from cvbulk.emulator import EmulatorConfig, EmulatorThread
    from tests.pipeline.test_predict import CLASSIFY_TEST, _train_trees

    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emulator")) as emu:
        anyio.run(_train_trees, emu)
        monkeypatch.setenv("VISION_TRAINING_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("VISION_TRAINING_KEY", emu.training_key)
        monkeypatch.setenv("VISION_PREDICTION_KEY", emu.prediction_key)  # endpoint: the training one
        out = tmp_path / "trees.csv"
        argv = ["predict", str(CLASSIFY_TEST), "--project", "predict-trees", "--published-name", "treeModel",
                "--output", str(out), "--tier", "unlimited", "--json"]
        assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["counts"] == {"predicted": 1} and report["extra"]["output"]["tag_columns"] == [
        "Hemlock", "Japanese_Cherry"
    ]
    with open(out, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["top_tag"] == "Hemlock" and float(row["Hemlock"]) > float(row["Japanese_Cherry"])
    assert emu.training_key not in captured.out + captured.err
    assert emu.prediction_key not in captured.out + captured.err
