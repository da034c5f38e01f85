"""Score a container (Azurite) with a published iteration of the emulator: by URL, one row per blob."""

from __future__ import annotations

import csv
import json
import sqlite3

import anyio
import pytest

from cvbulk.pipeline.predict import PredictOptions, run_predict
from cvbulk.pipeline.sources import open_image_source
from tests._azurite import azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
from tests.pipeline._blob_support import put_blobs, sample_blobs
from tests.pipeline.test_predict import emu_thread, trees  # noqa: F401 (the module's fixtures)

pytestmark = pytest.mark.timeout(120)


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_scoring_a_container_writes_one_row_per_blob(
    emu_thread, trees, tmp_path, azurite, azurite_container, azurite_service, monkeypatch  # noqa: F811
):
    from cvbulk.client import Pacer, PredictionClient

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    blobs = sample_blobs(skip="Hemlock")  # Japanese_Cherry/* and Test/*
    blobs["notes/readme.txt"] = b"not an image"
    blobs["broken/cut.jpg"] = b"\xff\xd8\xff\xe0 truncated"
    await put_blobs(azurite_service, azurite_container, blobs)
    out = tmp_path / "scores.csv"
    prediction = PredictionClient(emu_thread.endpoint, emu_thread.prediction_key, pacer=Pacer.for_tier("unlimited"))
    async with prediction, open_image_source(f"az://{azurite_container}/", via="auto") as source:
        options = PredictOptions(root=tmp_path, project=trees, published_name="treeModel", output=out, source=source)
        result = await run_predict(prediction, None, options)
        read = source.storage.stats.snapshot()
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(blobs)  # one row per blob, by name
    by_path = {r["path"]: r for r in rows}
    assert by_path["notes/readme.txt"]["status"] == "skipped"
    assert by_path["broken/cut.jpg"]["status"] == "rejected"
    images = len(blobs) - 2
    assert sum(r["status"] == "predicted" for r in rows) == images
    sent = result.report["extra"]["source"]["sent"]
    assert sent["by_url"] == images and sent["as_bytes"] == 0
    assert result.report["client"]["bytes_sent"] < 600 * images  # URLs, not images
    assert read["bytes_read"] == read["header_bytes"] <= 64 * 1024 * (images + 1)
    assert not result.ok  # the corrupt blob is a failure the exit status speaks of
    with sqlite3.connect(result.state_file) as db:
        vias = [json.loads(e or "{}").get("via") for (e,) in db.execute("select extra from entries where status='predicted'")]
    assert vias == ["url"] * images
    artefacts = out.read_text() + result.state_file.read_bytes().decode("utf-8", "replace") + result.report_file.read_text()
    assert "sig=" not in artefacts and "se=" not in artefacts

    # Resume: the output is the truth for predict; nothing is scored twice.
    again_client = PredictionClient(emu_thread.endpoint, emu_thread.prediction_key, pacer=Pacer.for_tier("unlimited"))
    async with again_client, open_image_source(f"az://{azurite_container}/", via="bytes") as source:
        options = PredictOptions(root=tmp_path, project=trees, published_name="treeModel", output=out, source=source)
        again = await run_predict(again_client, None, options)
    assert again.report["counts"] == {} and again.report["extra"]["already_done"] == len(blobs)
