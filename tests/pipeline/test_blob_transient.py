"""Storage trouble while a blob's header is checked is recorded ``error`` (a resume tries it again), not rejected."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from cvbulk.pipeline.sources import open_image_source
from cvbulk.pipeline.upload import UploadOptions, run_upload
from cvbulk.storage import StorageUnreachableError
from tests._azurite import azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
from tests.pipeline._blob_support import put_blobs, sample_blobs

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def blob_env(azurite, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite


async def test_a_storage_failure_in_the_header_check_is_retried_on_resume(
    tmp_path, blob_env, azurite_container, azurite_service, training_client  # noqa: F811
):
    blobs = dict(list(sample_blobs().items())[:4])
    unlucky = sorted(blobs)[1]
    await put_blobs(azurite_service, azurite_container, blobs)
    options = UploadOptions(root=tmp_path, project="flaky", create=True, state=tmp_path / "s.sqlite")
    async with open_image_source(f"az://{azurite_container}/", via="url") as source:
        real = source.storage.read_heads_at

        async def read_heads_at(reads, size=64 * 1024):
            heads = await real(reads, size)
            # the storage account failed for this one, past the reader's own retries
            return [StorageUnreachableError("storage at http://127.0.0.1 did not answer: TimeoutError")
                    if entry.name == unlucky else head for (entry, _), head in zip(reads, heads)]

        source.storage.read_heads_at = read_heads_at  # type: ignore[method-assign]
        first = await run_upload(training_client, replace(options, source=source))
    assert not first.ok and first.counts == {"uploaded": 3, "error": 1}
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        ((status, reason),) = db.execute("select status, reason from entries where key = ?", (unlucky,))
    assert status == "error" and "did not answer" in reason and "resume" in reason
    async with open_image_source(f"az://{azurite_container}/", via="url") as source:
        again = await run_upload(training_client, replace(options, source=source))
    assert again.ok and again.counts.get("uploaded") == 1, again.counts
