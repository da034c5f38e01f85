"""Bad input from a container: each a per-image reason or one fatal line, nothing lost."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from functools import partial

import anyio
import anyio.to_thread
import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from cvbulk.pipeline.errors import ConfigError, FatalRunError
from cvbulk.pipeline.prepare import TRAINING_LIMITS, Rejected
from cvbulk.pipeline.sources import BlobFolder, SourcedImage, open_image_source
from cvbulk.pipeline.upload import UploadOptions, run_upload
from cvbulk.storage import ReadUrl
from tests._azurite import ACCOUNT, KEY, azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
from tests.pipeline._blob_support import put_blobs, sample_blobs

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def blob_env(azurite, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite


def _unfetchable(source: BlobFolder) -> None:
    """Hand the service URLs it cannot fetch (a storage account behind a firewall, as the service sees it)."""
    real = source.storage.read_url

    async def read_url(entry, *, ttl: float = 3600.0) -> ReadUrl:
        signed = await real(entry, ttl=ttl)
        return ReadUrl("http://127.0.0.1:9/" + entry.name + "?sig=nope", signed.expires_at)

    source.storage.read_url = read_url  # type: ignore[method-assign]
    # cvbulk itself still reads the header (the blob is reachable from here, not from the service)
    source.storage.read_head_at = lambda entry, url, size=64 * 1024: source.storage.read_head(entry, size)  # type: ignore[method-assign]
    source.storage.read_more_at = lambda entry, url, head, size: source.storage.read_head(entry, size)  # type: ignore[method-assign]


async def _prepare(source: BlobFolder, item):
    return await anyio.to_thread.run_sync(partial(source.prepare, item, TRAINING_LIMITS, ()))


async def test_deleted_and_changed_blobs_are_that_blobs_outcome(blob_env, azurite_container, azurite_service):  # noqa: F811
    blobs = dict(list(sample_blobs().items())[:3])
    await put_blobs(azurite_service, azurite_container, blobs)
    async with open_image_source(f"az://{azurite_container}/", via="auto") as source:
        assert isinstance(source, BlobFolder)
        items = [it async for it in source.entries()]
        gone, changed, fine = items
        container = azurite_service.get_container_client(azurite_container)
        await container.delete_blob(gone.relpath)
        await container.upload_blob(changed.relpath, blobs[fine.relpath], overwrite=True)
        r_gone, r_changed, r_fine = [await _prepare(source, it) for it in items]
    assert isinstance(r_gone, Rejected) and "deleted since it was listed" in r_gone.reason
    assert isinstance(r_changed, Rejected) and "changed since it was listed" in r_changed.reason
    # an item's reason names the blob, not the whole location (its report row and CSV row name it already)
    assert r_gone.reason.startswith(repr(gone.relpath)) and r_changed.reason.startswith(repr(changed.relpath))
    for reason in (r_gone.reason, r_changed.reason):
        assert azurite_container not in reason and "127.0.0.1" not in reason and "://" not in reason
    assert isinstance(r_fine, SourcedImage) and r_fine.via == "url" and r_fine.url
    assert "sig=" not in repr(r_fine)


async def test_not_an_image_is_rejected_from_its_header_and_text_blobs_are_skipped(
    blob_env, azurite_container, azurite_service  # noqa: F811
):
    big_text = b"hello world\n" * 10_000  # longer than the header read
    await put_blobs(azurite_service, azurite_container,
                    {"a/x.jpg": big_text, "a/readme.md": b"# notes", "a/.hidden.jpg": b"x", "a/empty.png": b""})
    async with open_image_source(f"az://{azurite_container}/") as source:
        items = [it async for it in source.entries()]
        by_name = {it.relpath: it for it in items}
        assert by_name["a/readme.md"].reason.startswith("not an image file")
        assert by_name["a/.hidden.jpg"].reason.startswith("hidden file")
        rejected = await _prepare(source, by_name["a/x.jpg"])
        empty = await _prepare(source, by_name["a/empty.png"])
    assert isinstance(rejected, Rejected) and rejected.reason == "not an image: the file holds text"
    assert isinstance(empty, Rejected) and empty.code == "empty"


async def test_run_wide_storage_trouble_is_one_fatal_line(blob_env, azurite_container, azurite_service, monkeypatch):  # noqa: F811
    await put_blobs(azurite_service, azurite_container, {"a/x.jpg": b"x"})
    with pytest.raises(FatalRunError, match="not found"):
        async with open_image_source("az://nosuchcontainer/"):
            pass
    with pytest.raises(FatalRunError, match="nothing under"):
        async with open_image_source(f"az://{azurite_container}/nosuchprefix"):
            pass
    token = generate_container_sas(ACCOUNT, azurite_container, account_key=KEY,
                                   permission=ContainerSasPermissions(read=True, list=True),
                                   expiry=datetime.now(timezone.utc) - timedelta(minutes=5))
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(FatalRunError) as info:
        async with open_image_source(f"{blob_env.account_url}/{azurite_container}/?{token}"):
            pass
    assert "sig=" not in str(info.value) and "denied" in str(info.value)
    with pytest.raises(FatalRunError, match=r"did not answer|cannot reach|unreachable|refused"):
        async with open_image_source(f"http://127.0.0.1:9/{ACCOUNT}/{azurite_container}/?{token}"):
            pass
    with pytest.raises(ConfigError):
        async with open_image_source("az://Bad_Name/"):
            pass


async def test_auto_falls_back_to_bytes_when_the_service_cannot_fetch(
    tmp_path, blob_env, azurite_container, azurite_service, training_client  # noqa: F811
):
    blobs = dict(list(sample_blobs().items())[:5])
    await put_blobs(azurite_service, azurite_container, blobs)
    async with open_image_source(f"az://{azurite_container}/", via="auto") as source:
        _unfetchable(source)
        result = await run_upload(training_client, UploadOptions(
            root=tmp_path, project="fallback", create=True, source=source, state=tmp_path / "s.sqlite"))
    assert result.ok and result.counts == {"uploaded": 5}
    assert result.summary["source"]["sent"]["url_fallback_to_bytes"] == 5
    assert result.summary["source"]["sent"]["by_url"] == 0
    async with open_image_source(f"az://{azurite_container}/", via="url") as source:
        _unfetchable(source)
        strict = await run_upload(training_client, UploadOptions(
            root=tmp_path, project="strict", create=True, source=source, state=tmp_path / "t.sqlite"))
    assert not strict.ok and strict.counts == {"failed": 5}
    assert all(f["reason"].startswith("ErrorSource") for f in strict.failures)
    assert all("--via auto" in f["reason"] for f in strict.failures)  # the way out, since a rerun fails alike
    assert all("sig=" not in f["reason"] and "127.0.0.1:9" not in f["reason"] for f in strict.failures)


async def test_predict_falls_back_to_bytes(tmp_path, blob_env, azurite_container, azurite_service):  # noqa: F811
    from cvbulk.client import Pacer, PredictionClient
    from cvbulk.emulator import EmulatorConfig, EmulatorThread
    from cvbulk.pipeline.predict import PredictOptions, run_predict
    from tests.pipeline.test_predict import _train_trees

    blobs = dict(list(sample_blobs(skip="-").items())[-4:])
    await put_blobs(azurite_service, azurite_container, blobs)
    with EmulatorThread(EmulatorConfig(tier="unlimited", data_dir=tmp_path / "emu")) as emu:
        project = await _train_trees(emu)
        out = tmp_path / "o.csv"
        client = PredictionClient(emu.endpoint, emu.prediction_key, pacer=Pacer.for_tier("unlimited"))
        async with client, open_image_source(f"az://{azurite_container}/", via="auto") as source:
            _unfetchable(source)
            result = await run_predict(client, None, PredictOptions(
                root=tmp_path, project=project, published_name="treeModel", output=out, source=source))
    assert result.ok and result.report["counts"] == {"predicted": 4}
    assert result.report["extra"]["source"]["sent"]["url_fallback_to_bytes"] == 4
    with open(out, newline="") as f:
        assert sorted(r["path"] for r in csv.DictReader(f)) == sorted(blobs)
