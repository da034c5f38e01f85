"""With ``folders`` labels a container's prefix is listed once a run: the virtual folders are not walked first
(for a flat prefix that walk was a second listing of every blob); a blob's tag is made when the listing finds
it. Counted at the Azure SDK's transport: every List Blobs request that reaches Azurite."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from cvbulk.pipeline.sources import open_image_source
from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests._azurite import azurite, azurite_container, azurite_service, put_blobs  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(120)

PAGE = 1000  # names per List Blobs page (BlobSource.pages)


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (i % 256, 3, 5)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def listings(monkeypatch) -> list[dict[str, list[str]]]:
    """The query of every List Blobs request the SDK's transport sends (a counter in the transport)."""
    from azure.core.pipeline.transport import AioHttpTransport

    seen: list[dict[str, list[str]]] = []
    real = AioHttpTransport.send

    async def send(self, request, **kwargs):
        query = parse_qs(urlsplit(request.url).query)
        if query.get("comp") == ["list"]:
            seen.append(query)
        return await real(self, request, **kwargs)

    monkeypatch.setattr(AioHttpTransport, "send", send)
    return seen


async def test_a_flat_prefix_is_listed_once(tmp_path, azurite, azurite_container, azurite_service, training_client,  # noqa: F811
                                            listings, monkeypatch):
    n = PAGE + 1  # two pages
    blobs = {f"flat/img_{i:05d}.png": b"\x89PNG" for i in range(n)}  # flat: no virtual folder, so no tag
    await put_blobs(azurite_service, azurite_container, blobs)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    listings.clear()
    async with open_image_source(f"az://{azurite_container}/flat") as source:
        result = await run_upload(training_client, UploadOptions(
            root=tmp_path, project="flat", create=True, source=source, state=tmp_path / "s.sqlite"))
        stats = source.storage.stats.snapshot()
    assert result.counts == {"skipped": n}  # every blob has its outcome: no folder names its tag
    assert all(f["reason"].startswith("no label") for f in result.summary["skipped"][:3]), result.summary["skipped"][:3]
    # the check of the prefix (one name), then the run's one listing, a page at a time: nothing walked before
    assert not [q for q in listings if "delimiter" in q]
    assert len(listings) == 1 + -(-n // PAGE)
    assert stats["listed"] == n


async def test_a_tree_is_listed_once_and_its_folders_become_tags(
    tmp_path, azurite, azurite_container, azurite_service, training_client, listings, monkeypatch  # noqa: F811
):
    blobs = {f"tree/{tag}/{i}.png": _png(10 * k + i) for k, tag in enumerate(("oak", "elm", "ash")) for i in range(4)}
    blobs["tree/loose.png"] = _png(99)  # no folder: skipped, no label
    blobs["tree/Test/held-out.png"] = _png(98)  # excluded folder: no tag made for it
    await put_blobs(azurite_service, azurite_container, blobs)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    listings.clear()
    async with open_image_source(f"az://{azurite_container}/tree/") as source:
        dry = await run_upload(training_client, UploadOptions(
            root=tmp_path, project="tree", create=True, source=source, dry_run=True, exclude=("Test",)))
        result = await run_upload(training_client, UploadOptions(
            root=tmp_path, project="tree", create=True, source=source, state=tmp_path / "s.sqlite",
            exclude=("Test",)))
        again = await run_upload(training_client, UploadOptions(  # the tags are the project's now
            root=tmp_path, project="tree", source=source, dry_run=True, exclude=("Test",)))
    assert dry.summary["would_send"]["tags_to_create"] == ["ash", "elm", "oak"]
    assert again.summary["would_send"]["tags_to_create"] == []
    assert result.counts == {"uploaded": 12, "skipped": 2}
    assert result.summary["tags_created"] == ["ash", "elm", "oak"]
    project = next(p for p in await training_client.get_projects() if p.name == "tree")
    per_tag: dict[str, int] = {}
    async for image in training_client.iter_images(project.id):
        for t in image.tags:
            per_tag[t.tag_name] = per_tag.get(t.tag_name, 0) + 1
    assert per_tag == {"oak": 4, "elm": 4, "ash": 4}
    assert sorted(t.name for t in await training_client.get_tags(project.id)) == ["ash", "elm", "oak"]
    assert not [q for q in listings if "delimiter" in q] and len(listings) == 1 + 3  # a check, then a page a run


async def test_a_folder_past_the_tiers_tag_limit_stops_the_run_with_its_report(
    tmp_path, azurite, azurite_container, azurite_service, training_client, monkeypatch  # noqa: F811
):
    import json

    from cvbulk.pipeline.engine import RunStopped
    from cvbulk.pipeline.project import TAG_LIMITS

    blobs = {f"{tag}/{i}.png": _png(10 * k + i) for k, tag in enumerate(("ash", "elm", "oak")) for i in range(3)}
    await put_blobs(azurite_service, azurite_container, blobs)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setitem(TAG_LIMITS, "S0", 2)  # a tier that allows two tags: the third folder is one too many
    report = tmp_path / "report.json"
    async with open_image_source(f"az://{azurite_container}/") as source:
        with pytest.raises(RunStopped) as info:
            await run_upload(training_client, UploadOptions(
                root=tmp_path, project="few-tags", create=True, source=source, tier="S0",
                state=tmp_path / "s.sqlite", report=report))
        listed = source.listed
    assert "'oak'" in str(info.value) and "tier allows 2" in str(info.value) and "stay" in str(info.value)
    written = json.loads(report.read_text())
    assert written["stopped"]["reason"] == str(info.value)
    assert sum(written["counts"].values()) + written["stopped"]["not_reached"] == listed == 9
    project = next(p for p in await training_client.get_projects() if p.name == "few-tags")
    assert sorted(t.name for t in await training_client.get_tags(project.id)) == ["ash", "elm"]
