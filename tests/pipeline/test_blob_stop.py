"""Storage that stops answering mid-run: the run still writes its report (every outcome so far, why it stopped,
how many listed items it did not reach), then ends with the one fatal line; the same command, once the storage
answers again, finishes the job with nothing lost and nothing twice."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from PIL import Image

from cvbulk.pipeline.engine import RunStopped, Stop, run_job
from cvbulk.pipeline.errors import FatalRunError
from cvbulk.pipeline.sources import open_image_source, storage_stop
from cvbulk.storage import AccessDeniedError, ItemMissingError, StorageUnreachableError
from tests._azurite import Azurite, azurite, azurite_container, put_blobs, start_azurite  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(180)

RUN_AGAIN = "once it answers, run the same command again"


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (i % 256, (i // 256) % 256, 9)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def own_azurite(tmp_path):
    """An Azurite of this test's own (the test stops it mid-run, then starts it again on the same data)."""
    servers: list[Azurite] = [start_azurite(tmp_path / "azurite")]
    yield servers
    for server in servers:
        server.stop()


async def _fill(server: Azurite, container: str, blobs: dict[str, bytes]) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(server.connection_string) as service:
        await put_blobs(service, container, blobs)


def _rows(state: Path) -> dict[str, int]:
    with sqlite3.connect(state) as db:
        return dict(db.execute("select status, count(*) from entries group by status").fetchall())


# -- the engine's rule, without storage -------------------------------------------------------------


async def test_run_job_writes_the_report_of_a_stopped_run_then_raises_its_line():
    finished: list[str | None] = []
    stop = Stop(storage_stop)

    async def stages() -> None:
        async with anyio.create_task_group() as tg:  # the error surfaces from a task group, as a job's does
            tg.start_soon(anyio.sleep, 5)
            raise StorageUnreachableError("storage at http://127.0.0.1:9/acct did not answer: ServiceRequestError")

    async def finish() -> str:
        finished.append(str(stop.error))
        return "the result"

    with pytest.raises(RunStopped) as info:
        await run_job(None, None, None, stages, finish, stop=stop)
    assert isinstance(info.value, FatalRunError) and info.value.result == "the result"
    assert RUN_AGAIN in str(info.value) and finished == [str(info.value)]
    assert stop.report(7) == {"reason": str(info.value), "not_reached": 7}

    async def refused() -> None:
        raise AccessDeniedError("access denied to az://c/: authentication failed")

    with pytest.raises(RunStopped, match="access denied"):
        await run_job(None, None, None, refused, finish, stop=Stop(storage_stop))

    async def not_a_stop() -> None:  # one item's trouble, or any other error: raised as ever, no report
        raise ItemMissingError("'a.jpg' in az://c/ is gone")

    with pytest.raises(ItemMissingError):
        await run_job(None, None, None, not_a_stop, finish, stop=Stop(storage_stop))
    assert len(finished) == 2

    silent = Stop(storage_stop, check=lambda: FatalRunError("storage at x did not answer mid-run"))
    with pytest.raises(RunStopped, match="mid-run"):  # stages that ended while the account was silent
        await run_job(None, None, None, anyio.lowlevel.checkpoint, finish, stop=silent)


async def test_a_cancelled_run_is_not_a_stopped_one():
    called: list[int] = []

    async def finish() -> None:
        called.append(1)

    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_job(None, None, None, anyio.lowlevel.checkpoint, finish, stop=Stop(storage_stop))
    assert called == []


# -- upload from the command line: Azurite stopped mid-run, started again, the same command ---------------------


@pytest.mark.parametrize("via", ["auto", "bytes"])  # by URL (the service fetches), or bodies streamed from here
def test_upload_whose_storage_dies_mid_run_reports_exits_3_and_resumes_to_exactly_n_images(tmp_path, own_azurite, via):
    from cvbulk.emulator import EmulatorConfig, EmulatorThread
    from tests.reliability.conftest import cli_env, cvbulk, journal_count, spawn, wait_until

    n = 384
    blobs = {f"{'ab'[i % 2]}/img_{i:04d}.png": _png(i) for i in range(n)}
    anyio.run(_fill, own_azurite[0], "images", blobs)
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        state, report = tmp_path / "state.sqlite", tmp_path / "report.json"
        argv = ("upload", "az://images/", "--project", "midrun", "--create", "--tier", "unlimited", "--tps", "2",
                "--state", str(state), "--report", str(report), "--progress", "none", "--json", "--via", via)
        env = cli_env(emu, AZURE_STORAGE_CONNECTION_STRING=own_azurite[0].connection_string)
        out, err = tmp_path / "out.txt", tmp_path / "err.txt"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = spawn(*argv, env=env, cwd=tmp_path, stdout=stdout, stderr=stderr)
            try:
                wait_until(lambda: journal_count(state, ("uploaded",)) >= 128, timeout=120, what="128 uploaded", proc=proc)
                assert proc.poll() is None, "finished before the storage went away"
                own_azurite[0].stop()  # the storage account stops answering
                assert proc.wait(120) == 3
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        lines = err.read_text().strip().splitlines()
        assert lines[-1].startswith("cvbulk: error: storage at ") and "did not answer" in lines[-1], lines[-3:]
        assert RUN_AGAIN in lines[-1]
        printed = json.loads(out.read_text())  # --json: the report on stdout, as for a run that ends
        written = json.loads(report.read_text())
        assert printed["stopped"] == written["stopped"] and written["stopped"]["reason"] in lines[-1]
        assert written["extra"]["exit_code"] == 3
        # Every listed image: one outcome this run, or counted as not reached (left `sending` or never taken).
        rows = _rows(state)
        assert sum(written["counts"].values()) == sum(n for s, n in rows.items() if s != "sending")
        assert sum(written["counts"].values()) + written["stopped"]["not_reached"] == n
        assert written["stopped"]["not_reached"] > 0 and written["counts"]["uploaded"] >= 128
        assert "AccountKey" not in out.read_text() + err.read_text() + report.read_text()

        own_azurite.append(start_azurite(tmp_path / "azurite"))  # the same blobs, on another port
        env = cli_env(emu, AZURE_STORAGE_CONNECTION_STRING=own_azurite[1].connection_string)
        again = cvbulk(*argv, env=env, cwd=tmp_path, timeout=150)
        assert again.returncode == 0, again.stderr[-2000:]
        assert journal_count(state, ("uploaded", "duplicate")) == n
        assert anyio.run(_image_count, emu, "midrun") == n


async def _image_count(emu, name: str) -> int:
    from cvbulk.client import TrainingClient

    async with TrainingClient(emu.endpoint, emu.training_key) as client:
        project = next(p for p in await client.get_projects() if p.name == name)
        return len([im async for im in client.iter_images(project.id)])


# -- predict from a container: the storage goes away between two groups of header reads -----------------------


@pytest.mark.parametrize("via", ["url", "bytes"])  # fetched by the service, or bodies streamed from the container
async def test_predict_whose_storage_dies_mid_run_writes_its_report_and_rows(tmp_path, own_azurite, monkeypatch, via):
    from cvbulk.client import Pacer, PredictionClient
    from cvbulk.emulator import EmulatorConfig, EmulatorThread
    from cvbulk.pipeline.predict import PredictOptions, run_predict
    from tests.pipeline.test_predict import _train_trees

    n = 120
    server = own_azurite[0]
    await _fill(server, "dump", {f"night/{i:04d}.png": _png(i) for i in range(n)})
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    out, report = tmp_path / "scores.csv", tmp_path / "scores.csv.report.json"
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        project = await _train_trees(emu)
        client = PredictionClient(emu.endpoint, emu.prediction_key, pacer=Pacer.for_tier("unlimited"))
        async with client, open_image_source("az://dump/night", via=via) as source:
            name = "classify_image_url" if via == "url" else "classify_image"
            real = getattr(client, name)
            calls = 0

            async def classify(*args, **kw):
                nonlocal calls
                calls += 1
                if calls == 30:  # the account goes away with 29 images sent (as bytes: before this body is read)
                    await anyio.to_thread.run_sync(server.stop)
                return await real(*args, **kw)

            setattr(client, name, classify)
            with pytest.raises(RunStopped) as info:
                await run_predict(client, None, PredictOptions(
                    root=tmp_path, project=project, published_name="treeModel", output=out, source=source,
                    max_concurrency=4, prepare_workers=1))
            listed = source.listed
    assert "did not answer" in str(info.value) and RUN_AGAIN in str(info.value)
    assert "reading the image" not in str(info.value)  # the account's line, not one image's
    result = info.value.result
    written = json.loads(report.read_text())
    assert written["stopped"] == result.report["stopped"] and written["stopped"]["reason"] == str(info.value)
    counts = written["counts"]
    assert counts.get("predicted", 0) >= 20 and set(counts) <= {"predicted", "error", "failed"}
    assert sum(counts.values()) + written["stopped"]["not_reached"] == listed <= n
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    # a row for each image with a final outcome (an error gets its row when a resume scores it)
    assert len(rows) == counts["predicted"] + counts.get("failed", 0), counts
    if via == "url":  # the images the service was fetching when the account went away (as bytes: not reached)
        assert written["failures"]
    for reason in (f["reason"] for f in written["failures"]):
        assert "127.0.0.1" not in reason and "sig=" not in reason, reason  # the blob named, not the location


# -- export into a container whose destination stops answering ---------------------------------------------


async def test_export_whose_destination_dies_mid_run_writes_its_report(tmp_path, monkeypatch, training_client, azurite, azurite_container):  # noqa: E501
    from cvbulk.pipeline.export import ExportOptions, run_export
    from cvbulk.storage._blob_sink import BlobSink
    from tests.pipeline.export._build import build_project

    monkeypatch.chdir(tmp_path)
    project = await build_project(training_client, "to-dying-blob", "classification", 4)
    real = BlobSink.write_bytes
    writes = 0

    async def dying(self, name, data, *, content_type=None):
        nonlocal writes
        writes += 1
        if writes > 3:
            raise StorageUnreachableError(f"{name!r} in {self.location}: the storage account did not answer (ServiceRequestError)")
        return await real(self, name, data, content_type=content_type)

    monkeypatch.setattr(BlobSink, "write_bytes", dying)
    options = ExportOptions(project, azurite.url(azurite_container, "x"), storage_environ=azurite.environ(),
                            max_concurrency=1)
    with pytest.raises(RunStopped) as info:
        await run_export(training_client, options)
    assert "did not answer" in str(info.value) and RUN_AGAIN in str(info.value)
    written = json.loads(Path(options.report).read_text())
    assert written["stopped"]["reason"] == str(info.value)
    assert written["counts"].get("exported") == 3 and written["extra"]["label_files"] == []
    total = written["extra"]["images_in_project"]
    stopped = written["stopped"]
    assert sum(written["counts"].values()) + stopped["not_reached"] + stopped["not_listed"] == total
