"""``export --to az://container/prefix`` into a real Azurite: images and label files straight into the
container, resumable with a local state file that holds no secret, and back into a new project."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, default_state_file, run_export
from cvbulk.storage import open_source
from tests.pipeline._transfer_support import CancelAfter

from ._build import assert_same, build_project, contents, upload_labels

pytestmark = pytest.mark.timeout(120)
N = 200


async def copy_down(where: str, environ, dest) -> list[str]:
    """Every blob under ``where`` into the folder ``dest`` (upload reads from a folder here)."""
    names = []
    async with open_source(where, environ=environ) as source:
        async for entry in source.entries():
            data = await source.read_all(entry)
            path = dest.joinpath(*entry.name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            names.append(entry.name)
    return sorted(names)


async def test_export_to_a_container_resumes_and_round_trips(tmp_path, monkeypatch, training_client, azurite,
                                                            azurite_container):
    client = training_client
    monkeypatch.chdir(tmp_path)
    source = await build_project(client, "to-blob", "detection", N)
    where = azurite.url(azurite_container, "exports/trees")
    env = azurite.environ()

    with anyio.CancelScope() as scope:  # stopped mid-run, then resumed
        await run_export(client, ExportOptions(source, where, "automl", storage_environ=env, max_concurrency=4,
                                               validation_split=0.25), progress=CancelAfter(60, scope))
    assert scope.cancel_called
    result = await run_export(client, ExportOptions(source, where, "automl", storage_environ=env,
                                                    validation_split=0.25))
    assert result.ok, (result.failures[:3], result.summary["count_check"])
    first = N - result.counts["exported"]
    assert first >= 60 and result.summary["unchanged"] == first  # nothing downloaded twice
    assert result.summary["downloads"] == result.counts["exported"]

    state = default_state_file(ExportOptions(source, where).location)
    assert result.state_file == state and (tmp_path / state).exists() and not state.is_absolute()
    for f in (tmp_path / ".cvbulk").iterdir():  # the key never reaches a state file or report
        assert azurite.account_key.encode() not in f.read_bytes()

    local = tmp_path / "copy"
    names = await copy_down(where, env, local)
    assert {"train/train.jsonl", "train/MLTable", "validation/validation.jsonl", "validation/MLTable",
            "model.json"} <= set(names)
    assert sum(n.startswith("images/") for n in names) == N
    target = await upload_labels(client, local, "train/train.jsonl", "from-blob", tmp_path)
    await upload_labels(client, local, "validation/validation.jsonl", target, tmp_path)
    assert_same(await contents(client, source), await contents(client, target))


async def test_a_destination_that_stops_answering_is_one_line_that_says_to_run_again(
    tmp_path, monkeypatch, training_client, azurite, azurite_container
):
    from cvbulk.pipeline.errors import FatalRunError
    from cvbulk.storage import StorageUnreachableError
    from cvbulk.storage._blob_sink import BlobSink

    monkeypatch.chdir(tmp_path)
    source = await build_project(training_client, "to-dead-blob", "classification", 3)

    async def dead(self, name, data, *, content_type=None):
        raise StorageUnreachableError(f"storage at {self.location.account_url} did not answer: ServiceRequestError")

    monkeypatch.setattr(BlobSink, "write_bytes", dead)
    with pytest.raises(FatalRunError) as info:
        await run_export(training_client, ExportOptions(source, azurite.url(azurite_container, "x"),
                                                        storage_environ=azurite.environ()))
    assert "did not answer" in str(info.value) and "run the same command again" in str(info.value)
