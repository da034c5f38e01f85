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
