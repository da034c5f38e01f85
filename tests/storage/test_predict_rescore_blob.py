"""``cvbulk predict az://...`` twice, with a blob replaced in between (a new ETag): its row is the new score, one row
per blob, and the unchanged blobs are neither scored again nor rewritten (Azurite + the emulator, subprocesses)."""

from __future__ import annotations

import csv
import io
import json

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests.corpus import make_tree
from tests.pipeline._blob_support import put_blobs
from tests.reliability.conftest import cli_env, cvbulk, train_and_publish

pytestmark = pytest.mark.timeout(180)


async def _put(azurite, container: str, blobs: dict[str, bytes], *, create: bool) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await put_blobs(service, container, blobs, create=create)


def _rows(text: str) -> dict[str, list[dict[str, str]]]:
    by: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        by.setdefault(row["path"], []).append(row)
    return by


def test_a_blob_replaced_between_two_runs_gets_its_new_score_and_one_row(tmp_path, azurite, azurite_container):
    pics = tmp_path / "pics"
    tree = make_tree(pics, {"a": 3, "b": 3}, size=(32, 32), seed=5)
    first = {f"night/{rel}": (pics / rel).read_bytes() for rel in tree if rel.startswith("a/")}
    other = next((pics / rel).read_bytes() for rel in tree if rel.startswith("b/"))
    anyio.run(lambda: _put(azurite, azurite_container, first, create=True))
    replaced = sorted(first)[1]
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        model = anyio.run(train_and_publish, emu, "prod", tmp_path)[0]
        env = cli_env(emu, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)

        def predict(output: str) -> dict:
            done = cvbulk("predict", f"az://{azurite_container}/night", "--project", model, "--published-name", "prod",
                          "--output", output, "--tier", "unlimited", "--json", env=env, cwd=tmp_path, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
            return json.loads(done.stdout)

        report = predict("night.csv")
        assert report["counts"] == {"predicted": 3}
        before = (tmp_path / "night.csv").read_text()

        anyio.run(lambda: _put(azurite, azurite_container, {f"night/{replaced.split('/', 1)[1]}": other}, create=False))
        report = predict("night.csv")
        assert report["counts"] == {"predicted": 1}  # only the replaced blob
        assert report["extra"]["rescored_changed"] == 1 and report["extra"]["already_done"] == 2
        after = (tmp_path / "night.csv").read_text()
        rows = _rows(after)
        assert sorted(rows) == sorted(n.split("/", 1)[1] for n in first)
        assert all(len(r) == 1 for r in rows.values())  # one row per blob
        key = replaced.split("/", 1)[1]
        # Its row is the new content's score: what a first run on the container scores it now.
        predict("fresh.csv")
        fresh = _rows((tmp_path / "fresh.csv").read_text())
        assert rows[key] == fresh[key] != _rows(before)[key]
        # The unchanged blobs' lines are as they were, and the replaced one's new line comes last.
        old_lines = before.splitlines(keepends=True)
        assert after.splitlines(keepends=True)[:-1] == [line for line in old_lines if not line.startswith(key)]

        report = predict("night.csv")
        assert report["counts"] == {} and report["extra"]["rescored_changed"] == 0


async def test_a_blob_changed_mid_run_is_rejected_and_the_next_run_scores_its_new_content(
    tmp_path, azurite, azurite_container, azurite_service, monkeypatch
):
    """The reason printed for a blob replaced between its listing and its read says the next run sends its new
    content: for predict too, the next run scores it (its ETag differs from the journal's) and its row is replaced."""
    from cvbulk.client import Pacer, PredictionClient
    from cvbulk.pipeline.predict import PredictOptions, run_predict
    from cvbulk.pipeline.sources import open_image_source

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    pics = tmp_path / "pics"
    tree = make_tree(pics, {"a": 3, "b": 1}, size=(32, 32), seed=9)
    blobs = {rel: (pics / rel).read_bytes() for rel in tree if rel.startswith("a/")}
    other = next((pics / rel).read_bytes() for rel in tree if rel.startswith("b/"))
    await put_blobs(azurite_service, azurite_container, blobs)
    target = sorted(blobs)[1]
    container = azurite_service.get_container_client(azurite_container)
    out = tmp_path / "night.csv"
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        model = (await train_and_publish(emu, "prod", tmp_path))[0]

        async def run(replace_mid_run: bool) -> dict:
            prediction = PredictionClient(emu.endpoint, emu.prediction_key, pacer=Pacer.for_tier("unlimited"))
            async with prediction, open_image_source(f"az://{azurite_container}/", via="auto") as source:
                listed = source.entries

                async def entries(**kw):
                    async for entry in listed(**kw):
                        if replace_mid_run and entry.relpath == target:  # listed, then replaced before it is read
                            await container.upload_blob(target, other, overwrite=True)
                        yield entry

                source.entries = entries
                options = PredictOptions(root=tmp_path, project=model, published_name="prod", output=out, source=source)
                return (await run_predict(prediction, None, options)).report

        report = await run(True)
        assert report["counts"] == {"predicted": 2, "rejected": 1}
        rows = _rows(out.read_text())
        assert rows[target][0]["status"] == "rejected" and "the next run sends its new content" in rows[target][0]["reason"]

        report = await run(False)
        assert report["counts"] == {"predicted": 1} and report["extra"]["rescored_changed"] == 1
        rows = _rows(out.read_text())
        assert all(len(r) == 1 for r in rows.values()) and sorted(rows) == sorted(blobs)
        assert rows[target][0]["status"] == "predicted"
