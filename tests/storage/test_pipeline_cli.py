"""``cvbulk upload`` / ``cvbulk predict`` from an Azurite container, as a user runs them (subprocesses):
killed twice and resumed, and no key, SAS token or connection string in anything they leave behind."""

from __future__ import annotations

import io
import json
import sqlite3

import anyio
import pytest
from PIL import Image

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests._azurite import put_into
from tests.pipeline._blob_support import sample_blobs
from tests.reliability.conftest import cli_env, cvbulk, journal_count, kill_when, spawn, train_and_publish

pytestmark = pytest.mark.timeout(300)


def _tiny_png(i: int) -> bytes:
    img = Image.new("RGB", (8, 8), (i % 256, (i // 256) % 256, 7))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def _image_count(emu, name: str) -> int:
    from cvbulk.client import TrainingClient

    async with TrainingClient(emu.endpoint, emu.training_key) as client:
        project = next(p for p in await client.get_projects() if p.name == name)
        return len([im async for im in client.iter_images(project.id)])


def test_2000_blobs_killed_twice_and_resumed_end_with_2000_images(
    tmp_path, azurite, azurite_container, azurite_service
):
    blobs = {f"{'ab'[i % 2]}/img_{i:04d}.png": _tiny_png(i) for i in range(2000)}
    anyio.run(_put, azurite, azurite_container, blobs)
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        env = cli_env(emu, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
        state = tmp_path / "state.sqlite"
        argv = ("upload", f"az://{azurite_container}/", "--project", "many", "--create", "--tier", "unlimited",
                "--tps", "4", "--state", str(state), "--progress", "none")
        for stop_at in (300, 1000):  # a real SIGKILL mid-run, twice
            kill_when(spawn(*argv, env=env, cwd=tmp_path), lambda n=stop_at: journal_count(state, ("uploaded",)) >= n,
                      timeout=120, what=f"{stop_at} uploaded")
        done = cvbulk(*argv, "--json", env=env, cwd=tmp_path, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        assert journal_count(state, ("uploaded",)) == 2000
        assert anyio.run(_image_count, emu, "many") == 2000
        assert report["extra"]["source"]["sent"]["as_bytes"] == 0


_put = put_into


def test_no_key_sas_or_connection_string_in_any_artefact(tmp_path, azurite, azurite_container):
    blobs = sample_blobs(skip="-")  # with Test/
    blobs["Hemlock/notes.txt"] = b"not an image"
    blobs["Hemlock/broken.jpg"] = b"\xff\xd8\xff\xe0 cut"
    anyio.run(_put, azurite, azurite_container, blobs)
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        model = anyio.run(train_and_publish, emu, "prod", tmp_path)[0]
        conn = azurite.connection_string
        env = cli_env(emu, AZURE_STORAGE_CONNECTION_STRING=conn)
        outputs: list[str] = []
        runs = {
            "upload-url": ("upload", f"az://{azurite_container}/", "--project", "s-url", "--create", "--exclude", "Test"),
            "upload-bytes": ("upload", azurite.url(azurite_container), "--project", "s-bytes", "--create",
                             "--via", "bytes"),
            "predict": ("predict", f"az://{azurite_container}/Test", "--project", model, "--published-name", "prod",
                        "--output", "out.csv"),
            "predict-jsonl": ("predict", f"az://{azurite_container}/", "--project", model, "--published-name", "prod",
                              "--output", "out.jsonl", "--json"),
            "missing-container": ("upload", "az://nosuchcontainer/", "--project", "s-x", "--create"),
        }
        for name, argv in runs.items():
            d = tmp_path / name
            d.mkdir()
            done = cvbulk(*argv, "--tier", "unlimited", "--debug", env=env, cwd=d, timeout=120)
            expected = {"missing-container": 3, "predict": 0}.get(name, 1)
            assert done.returncode == expected, (name, done.returncode, done.stderr[-1500:])
            outputs += [done.stdout, done.stderr]
            outputs += [p.read_bytes().decode("utf-8", "replace") for p in d.rglob("*") if p.is_file()]
        text = "\n".join(outputs)
        from tests._azurite import KEY

        for secret in (KEY, conn, "sig=", "AccountKey", emu.training_key, emu.prediction_key):
            assert secret not in text, secret[:8]
        assert "not found" in text  # the missing container's one line


def test_by_url_reads_no_image_bytes_in_the_report(tmp_path, azurite, azurite_container):
    blobs = sample_blobs(skip="-")
    anyio.run(_put, azurite, azurite_container, blobs)
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        env = cli_env(emu, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
        done = cvbulk("upload", f"az://{azurite_container}/", "--project", "t", "--create", "--exclude", "Test",
                      "--tier", "unlimited", "--json", "--via", "url", env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        images = sum(1 for n in blobs if not n.startswith("Test/"))
        excluded = len(blobs) - images  # --exclude Test: each listed as skipped, with its reason
        assert report["counts"] == {"uploaded": images, "skipped": excluded}
        assert report["extra"]["source"]["sent"]["by_url"] == images
        storage = report["extra"]["source"]["storage"]
        assert storage["bytes_read"] == storage["header_bytes"]
        state = next((tmp_path / ".cvbulk").glob("upload-*.sqlite"))
        with sqlite3.connect(state) as db:
            rows = db.execute("select status, extra from entries").fetchall()
            assert {json.loads(e)["via"] for (s, e) in rows if s == "uploaded"} == {"url"}

