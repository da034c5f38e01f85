"""Upload from an Azure Blob Storage container (Azurite) into the emulator: by URL, as bytes, resumed."""

from __future__ import annotations

import json
import sqlite3

import pytest

from cvbulk.pipeline.sources import BlobFolder, open_image_source
from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests._azurite import azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
from tests.pipeline._blob_support import put_blobs, sample_blobs


@pytest.fixture
def blob_env(azurite, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite


def _options(tmp_path, source, **kw) -> UploadOptions:
    return UploadOptions(
        root=tmp_path, project="trees", create=True, source=source,
        state=tmp_path / "state.sqlite", report=tmp_path / "report.json", **kw,
    )


def _tag_counts(images) -> dict[str, int]:
    out: dict[str, int] = {}
    for im in images:
        for t in im.tags:
            out[t.tag_name] = out.get(t.tag_name, 0) + 1
    return out


async def test_sample_tree_uploads_by_url_with_its_tags(tmp_path, blob_env, azurite_container, azurite_service, training_client):  # noqa: F811
    blobs = sample_blobs()
    await put_blobs(azurite_service, azurite_container, blobs)
    async with open_image_source(f"az://{azurite_container}/", via="url") as source:
        assert isinstance(source, BlobFolder)
        result = await run_upload(training_client, _options(tmp_path, source))
        read = source.storage.stats.snapshot()
    assert result.ok, result.failures
    assert result.counts == {"uploaded": len(blobs)}
    projects = [p for p in await training_client.get_projects() if p.name == "trees"]
    images = [im async for im in training_client.iter_images(projects[0].id)]
    expected: dict[str, int] = {}
    for name in blobs:
        expected[name.split("/")[0]] = expected.get(name.split("/")[0], 0) + 1
    assert _tag_counts(images) == expected
    # No image byte through cvbulk: the requests carry URLs only, and storage gave header reads only.
    sent = result.summary["source"]["sent"]
    assert sent == {"by_url": len(blobs), "as_bytes": 0, "fixed_as_bytes": 0, "url_fallback_to_bytes": 0}
    assert read["bytes_read"] == read["header_bytes"] <= 64 * 1024 * len(blobs)
    assert result.report["client"]["bytes_sent"] < 400 * len(blobs)  # JSON with URLs, not images
    assert sum(len(b) for b in blobs.values()) > 20 * result.report["client"]["bytes_sent"]
    assert result.summary["batches"] == {"urls": -(-len(blobs) // 64)}
    # Per item: the journal says how each image went, and holds no SAS URL.
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        extras = [json.loads(e) for (e,) in db.execute("select extra from entries")]
        dump = "\n".join(str(r) for r in db.execute("select * from entries"))
    assert extras and all(e == {"via": "url"} for e in extras)
    assert "sig=" not in dump and "?" not in dump


async def test_bytes_and_resume_by_etag(tmp_path, blob_env, azurite_container, azurite_service, training_client):  # noqa: F811
    blobs = dict(list(sample_blobs().items())[:6])
    await put_blobs(azurite_service, azurite_container, blobs)
    where = f"{blob_env.account_url}/{azurite_container}/"
    async with open_image_source(where, via="bytes") as source:
        first = await run_upload(training_client, _options(tmp_path, source))
        assert first.summary["source"]["sent"]["as_bytes"] == 6
    assert first.ok and first.counts == {"uploaded": 6}
    async with open_image_source(where, via="auto") as source:
        again = await run_upload(training_client, _options(tmp_path, source))
    assert again.ok and again.counts == {}  # unchanged blobs are not sent again
    # A blob replaced between runs (new ETag) is sent again; by URL this time.
    name = sorted(blobs)[0]
    other = sample_blobs()[sorted(sample_blobs())[-1]]
    await azurite_service.get_container_client(azurite_container).upload_blob(name, other, overwrite=True)
    async with open_image_source(where, via="auto") as source:
        third = await run_upload(training_client, _options(tmp_path, source))
    assert third.ok and sum(third.counts.values()) == 1
    assert third.summary["source"]["sent"]["by_url"] == 1


async def test_a_local_manifest_names_blobs(tmp_path, blob_env, azurite_container, azurite_service, training_client):  # noqa: F811
    blobs = dict(list(sample_blobs().items())[:4])
    await put_blobs(azurite_service, azurite_container, {f"dump/{n.split('/')[-1]}": b for n, b in blobs.items()})
    manifest = tmp_path / "labels.csv"
    names = sorted(n.split("/")[-1] for n in blobs)
    manifest.write_text("path,tags\n" + "".join(f"{n},{'odd' if i % 2 else 'even'}\n" for i, n in enumerate(names)))
    async with open_image_source(f"az://{azurite_container}/dump", via="url") as source:
        result = await run_upload(training_client, _options(tmp_path, source, labels=str(manifest)))
    assert result.ok and result.counts == {"uploaded": 4}
    project = next(p for p in await training_client.get_projects() if p.name == "trees")
    assert _tag_counts([im async for im in training_client.iter_images(project.id)]) == {"even": 2, "odd": 2}
