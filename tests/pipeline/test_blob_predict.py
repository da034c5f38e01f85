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


async def test_a_paced_run_from_a_container_naps_between_ticks_with_the_same_rows(
    emu_thread, trees, tmp_path, azurite, azurite_container, azurite_service, monkeypatch  # noqa: F811
):
    """At S0 on the CLI's loop the network is served once per rate-limiter tick (``_naps``): the rows are those of
    an unpaced run, the pace holds, and the loop is back to serving I/O at once after the run."""
    import asyncio

    from cvbulk.client import Pacer, PredictionClient
    from cvbulk.pipeline._naps import napping_loop

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    blobs = sample_blobs(skip="Hemlock")
    await put_blobs(azurite_service, azurite_container, blobs)
    quanta: list[float] = []

    class Watch:
        """A progress sink that notes the loop's quantum while rows are recorded."""

        def __getattr__(self, name: str):  # every other ProgressSink call: nothing to do
            return lambda *a, **k: None

        def advanced(self, **counts: int) -> None:
            quanta.append(asyncio.get_running_loop().napper.quantum)  # type: ignore[attr-defined]

    async def score(tier: str, out) -> tuple[object, float]:
        prediction = PredictionClient(emu_thread.endpoint, emu_thread.prediction_key, pacer=Pacer.for_tier(tier))
        async with prediction, open_image_source(f"az://{azurite_container}/", via="url") as source:
            options = PredictOptions(root=tmp_path, project=trees, published_name="treeModel", output=out, source=source)
            result = await run_predict(prediction, None, options, progress=Watch())  # type: ignore[arg-type]
        return result, asyncio.get_running_loop().napper.quantum  # type: ignore[attr-defined]

    def on_a_napping_loop(tier: str, out) -> tuple[object, float]:  # as the CLI runs a job
        return anyio.run(score, tier, out, backend_options={"loop_factory": napping_loop})

    paced, after = await anyio.to_thread.run_sync(on_a_napping_loop, "S0", tmp_path / "paced.csv")
    free, _ = await anyio.to_thread.run_sync(on_a_napping_loop, "unlimited", tmp_path / "free.csv")
    assert quanta and set(quanta[: len(quanta) // 2]) == {0.25} and 0.0 in quanta  # S0 napped, unlimited not
    assert after == 0.0  # the loop serves I/O at once again after the run
    strip = lambda rows: sorted((r["path"], r["status"], r["top_tag"]) for r in rows)  # noqa: E731
    assert strip(_rows(tmp_path / "paced.csv")) == strip(_rows(tmp_path / "free.csv"))
    assert len(_rows(tmp_path / "paced.csv")) == len(blobs)
    assert paced.report["counts"] == free.report["counts"]  # type: ignore[attr-defined]
