"""One place, one state file: every spelling of the same container and prefix finds the same state, so
switching between them resumes instead of sending the images again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from cvbulk.pipeline.sources import open_image_source
from cvbulk.pipeline.upload import UploadOptions, run_upload
from cvbulk.storage import parse_location
from tests._azurite import ACCOUNT, KEY, azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
from tests.pipeline._blob_support import put_blobs, sample_blobs

pytestmark = pytest.mark.timeout(120)


def test_the_key_is_account_container_and_prefix_whatever_the_spelling():
    forms = [
        "https://acct.blob.core.windows.net/images/flowers",
        "https://acct.blob.core.windows.net/images/flowers/",
        "https://ACCT.blob.core.windows.net/images//flowers/?sv=2024&sp=rl&sig=abc",
        "http://acct.blob.core.windows.net/images/flowers",
    ]
    keys = {parse_location(f).key for f in forms}
    assert keys == {"blob://acct/images/flowers/"}
    path_style = {parse_location(f"http://{host}:10000/acct/images/flowers").key for host in ("127.0.0.1", "localhost")}
    assert path_style == keys
    assert parse_location("https://acct.blob.core.windows.net/images/").key == "blob://acct/images/"
    assert parse_location("https://acct.blob.core.windows.net/images/flowers2").key != next(iter(keys))
    assert "sig" not in parse_location(forms[2]).key


async def _project_images(client, name: str) -> int:
    project = next(p for p in await client.get_projects() if p.name == name)
    return len([im async for im in client.iter_images(project.id)])


async def test_switching_forms_resumes_instead_of_uploading_again(
    tmp_path, azurite, azurite_container, azurite_service, training_client, monkeypatch  # noqa: F811
):
    blobs = {f"p/{name}": data for name, data in list(sample_blobs().items())[:6]}
    await put_blobs(azurite_service, azurite_container, blobs)
    monkeypatch.chdir(tmp_path)  # the default state path: ./.cvbulk/upload-<project>-<hash>.sqlite
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    token = generate_container_sas(ACCOUNT, azurite_container, account_key=KEY,
                                   permission=ContainerSasPermissions(read=True, list=True),
                                   expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    forms = [
        f"az://{azurite_container}/p",
        f"az://{azurite_container}/p/",
        azurite.url(azurite_container, "p"),
        azurite.url(azurite_container, "p/") + "?" + token,
        f"http://localhost:{azurite.port}/{ACCOUNT}/{azurite_container}/p",
    ]
    states = set()
    for k, root in enumerate(forms):
        async with open_image_source(root) as source:
            result = await run_upload(training_client, UploadOptions(
                root=tmp_path, project="one-place", create=k == 0, source=source))
        assert result.ok, (root, result.failures)
        states.add(result.state_file)
        if k == 0:
            assert result.counts == {"uploaded": 6}
        else:  # already done: nothing sent again
            assert result.counts == {}, (root, result.counts)
            assert result.summary["unchanged"] == 6
    assert len(states) == 1
    assert await _project_images(training_client, "one-place") == 6
