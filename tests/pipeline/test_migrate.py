"""Migration between two emulators (each its own data folder): counts, labels, kill and resume."""

from __future__ import annotations

import io
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
import pytest
from yarl import URL

from cvbulk.client import ImageFileCreateEntry, Pacer, Region, RetryPolicy, TrainingClient
from cvbulk.emulator import Emulator, EmulatorConfig
from cvbulk.pipeline._migrate_send import Grouper, MigrateItem
from cvbulk.pipeline.batch import TaggedRegion
from cvbulk.pipeline.errors import ConfigError as CLIError
from cvbulk.pipeline.errors import PipelineError
from cvbulk.pipeline.journal import Journal
from cvbulk.pipeline.migrate import MigrateOptions, run_migrate
from tests.corpus import make_image
from tests.pipeline._link_clock import LinksExpireAt
from tests.pipeline._transfer_support import CancelAfter, project_images, sha

pytestmark = pytest.mark.timeout(90)

TAGS = ("apple", "banana", "cherry", "damson")


def jpeg(seed: int, size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    make_image(size, seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@asynccontextmanager
async def two_emulators(tmp_path):
    async with Emulator(EmulatorConfig(data_dir=tmp_path / "emu-a")) as a, \
            Emulator(EmulatorConfig(data_dir=tmp_path / "emu-b")) as b:
        yield a, b


def client_for(emu, cls=TrainingClient) -> TrainingClient:
    retry = RetryPolicy(max_attempts=4, base=0.05, cap=0.5, max_elapsed=20.0)
    return cls(emu.endpoint, emu.training_key, pacer=Pacer.for_tier("unlimited"), retry=retry)


async def make_source(client: TrainingClient, n: int, name: str = "fruit") -> tuple[str, dict[str, tuple]]:
    """An object-detection project of ``n`` tiny images: regions of one or two tags, every tenth image
    untagged, every tenth but five tagged with two tags and no region, every fifth with metadata. Returns (project id, sha -> (tags, regions, metadata))."""
    domain = next(d for d in await client.get_domains() if d.type == "ObjectDetection")
    project = await client.create_project(name, domain_id=domain.id)
    tag_ids = {t: (await client.create_tag(project.id, t)).id for t in TAGS}
    groups: dict[tuple, list[ImageFileCreateEntry]] = {}
    expected: dict[str, tuple] = {}
    for i in range(n):
        data = jpeg(i)
        regions: list[tuple] = []
        image_tags: tuple[str, ...] = ()
        if i % 10 == 5:
            image_tags = (TAGS[i % 4], TAGS[(i + 2) % 4])  # tagged without a region
        elif i % 10:
            regions.append((TAGS[i % 4], 0.1, 0.1, 0.3, 0.25 + (i % 7) / 100))
            if i % 3 == 0:
                regions.append((TAGS[(i + 1) % 4], 0.5, 0.45, 0.4, 0.5))
        meta = (("batch", str(i % 3)),) if i % 5 == 0 else ()
        entry = ImageFileCreateEntry(
            f"{i}.jpg", data, tag_ids=tuple(tag_ids[t] for t in image_tags),
            regions=tuple(Region(tag_ids[r[0]], *r[1:]) for r in regions),
        )
        groups.setdefault(meta, []).append(entry)
        expected[sha(data)] = (tuple(sorted(image_tags)), tuple(sorted(regions)), dict(meta))
    assert len(expected) == n  # distinct contents
    for meta, entries in groups.items():
        for start in range(0, len(entries), 64):
            summary = await client.create_images_from_files(
                project.id, entries[start : start + 64], metadata=dict(meta) or None
            )
            assert all(r.status == "OK" for r in summary.images)
    return project.id, expected


async def held(client: TrainingClient, project_id: str) -> dict[str, tuple]:
    """sha -> (tags, regions, metadata) of every image in the project."""
    return await project_images(client, project_id, digits=9)


def rounded(expected: dict[str, tuple]) -> dict[str, tuple]:
    return {
        k: (tuple(sorted((r[0], *(round(v, 9) for v in r[1:])) for r in regions)), meta)
        for k, (tags, regions, meta) in expected.items()
    }


async def same_labels(src, source_id, dst, target_id, expected) -> None:
    """The target holds the source's images (by content) with the same tags, regions and metadata."""
    before, after = await held(src, source_id), await held(dst, target_id)
    assert after == before
    assert {k: v[1:] for k, v in before.items()} == rounded(expected)
    # images tagged without a region keep exactly their tags
    assert {k: v[0] for k, v in before.items() if not v[1]} == {k: e[0] for k, e in expected.items() if not e[1]}


async def test_thousand_images_by_url_killed_and_resumed_without_duplicates(tmp_path):
    async with two_emulators(tmp_path) as (a, b), client_for(a) as src, client_for(b) as dst:
        with anyio.fail_after(60):
            source_id, expected = await make_source(src, 1000)
            options = MigrateOptions("fruit", "fruit-copy", create=True, by="url",
                                     state=tmp_path / "m.sqlite", report=tmp_path / "m.json")
            with anyio.CancelScope() as scope:
                await run_migrate(src, dst, options, progress=CancelAfter(300, scope))
            assert scope.cancel_called
            with Journal.open(tmp_path / "m.sqlite", job="migrate", fingerprint=_fingerprint(a, b, source_id,
                              (await dst.get_projects())[0].id)) as j:
                first = j.counts()
            assert 300 <= first.get("uploaded", 0) < 1000
            assert first.get("sending", 0) > 0  # batches cut off in flight: re-sent, answered OKDuplicate

            result = await run_migrate(src, dst, options)
        assert result.ok, result.report["failures"]
        extra = result.report["extra"]
        comparison = extra["comparison"]
        assert comparison["equal"], comparison
        assert comparison["images"] == {"source": 1000, "target": 1000}  # no duplicate
        assert comparison["untagged"] == {"source": 100, "target": 100}
        assert all(c["source"] == c["target"] > 0 for c in comparison["tags"].values())
        assert extra["unchanged"] == first["uploaded"]
        assert extra["state_counts"] == {"uploaded": 1000}
        assert extra["sent_by"] == {"url": 1000 - first["uploaded"]}
        # the same content under the same tags, regions and metadata
        target_id = extra["target"]["project_id"]
        await same_labels(src, source_id, dst, target_id, expected)
        project = await dst.get_project(target_id)
        assert (await dst.get_domain(project.settings.domain_id)).type == "ObjectDetection"


def _fingerprint(a, b, source_id: str, target_id: str) -> dict:
    return {"source": {"endpoint": a.endpoint, "project_id": source_id},
            "target": {"endpoint": b.endpoint, "project_id": target_id}}


class RelativeUris(TrainingClient):
    """A source whose image URIs only its own client can follow (relative to its endpoint), as when the
    target cannot reach the source's storage: CreateImagesFromUrls answers ErrorSource."""

    async def iter_images(self, *args, **kwargs):
        async for image in super().iter_images(*args, **kwargs):
            # the path and query alone: the client joins it to its endpoint (which serves it), the target cannot
            yield replace(image, original_image_uri=str(URL(image.original_image_uri).relative()))


async def test_auto_falls_back_to_download_and_upload(tmp_path):
    async with two_emulators(tmp_path) as (a, b), client_for(a, RelativeUris) as src, client_for(b) as dst:
        with anyio.fail_after(30):
            source_id, expected = await make_source(src, 150)
            options = MigrateOptions("fruit", "fruit-copy", create=True, state=tmp_path / "m.sqlite",
                                     report=tmp_path / "m.json", batch_bytes=8 * 1024)
            result = await run_migrate(src, dst, options)
        assert result.ok, result.report["failures"]
        extra = result.report["extra"]
        assert extra["mode"] == "upload"
        assert extra["sent_by"] == {"upload": 150}
        assert extra["url_fallbacks"] == 64  # the one batch tried by URL
        assert extra["comparison"]["equal"]
        await same_labels(src, source_id, dst, extra["target"]["project_id"], expected)

        # forced --by url cannot work here: every image fails with the service's reason, exit 1
        options = MigrateOptions("fruit", "fruit-url", create=True, by="url", state=tmp_path / "u.sqlite",
                                 report=tmp_path / "u.json")
        result = await run_migrate(src, dst, options)
        assert not result.ok
        assert result.report["counts"] == {"failed": 150}
        assert all(f["reason"].startswith("ErrorSource") for f in result.report["failures"])
        assert not result.report["extra"]["comparison"]["equal"]


async def test_by_upload_into_an_existing_project_with_some_images_already_there(tmp_path):
    async with two_emulators(tmp_path) as (a, b), client_for(a) as src, client_for(b) as dst:
        _, expected = await make_source(src, 70)
        # the target already holds three of the images, untagged, and one of the tags
        domain = next(d for d in await dst.get_domains() if d.type == "ObjectDetection")
        target = await dst.create_project("existing", domain_id=domain.id)
        await dst.create_tag(target.id, "Apple")  # same tag, other case: reused, not created
        await dst.create_images_from_data(target.id, [(f"{i}.jpg", jpeg(i)) for i in (1, 2, 5)])
        options = MigrateOptions("fruit", "existing", by="upload", state=tmp_path / "m.sqlite",
                                 report=tmp_path / "m.json")
        with anyio.fail_after(30):
            result = await run_migrate(src, dst, options)
        assert result.ok, result.report["failures"]
        assert result.report["counts"] == {"uploaded": 67, "duplicate": 3}
        assert sorted(result.report["extra"]["tags_created"]) == ["banana", "cherry", "damson"]
        # the duplicates got their regions added
        got = await held(dst, target.id)
        want = {k: tuple((r[0].replace("apple", "Apple"), *r[1:]) for r in regions)
                for k, (regions, _) in rounded(expected).items()}
        assert {k: v[1] for k, v in got.items()} == want
        # and the source's metadata (image 5 has some): UpdateImageMetadata on the OKDuplicate
        assert {k: v[2] for k, v in got.items()} == {k: meta for k, (_, _, meta) in expected.items()}
        assert result.report["extra"]["metadata_updated"] == 1


async def test_expired_source_links_are_renewed_not_fatal(tmp_path):
    # Every link the source has issued expires when migrate starts its 20th download (the source's link
    # clock moved past their lifetime): links listed at the start are refused mid-run (403), and migrate
    # asks the source for fresh links (GetImagesByIds) instead of stopping the run.
    retry = RetryPolicy(max_attempts=4, base=0.05, cap=0.5, max_elapsed=20.0)
    async with Emulator(EmulatorConfig(data_dir=tmp_path / "emu-a")) as a, \
            Emulator(EmulatorConfig(data_dir=tmp_path / "emu-b")) as b, client_for(b) as dst:
        async with client_for(a) as fast:
            source_id, expected = await make_source(fast, 48)
        async with LinksExpireAt(a, [20], pacer=Pacer.for_tier("unlimited"), retry=retry) as src:
            options = MigrateOptions("fruit", "fruit-copy", create=True, by="upload", max_concurrency=2,
                                     state=tmp_path / "m.sqlite", report=tmp_path / "m.json")
            with anyio.fail_after(60):
                result = await run_migrate(src, dst, options)
            assert src.expired == 1
            assert result.ok, result.report["failures"]
            extra = result.report["extra"]
            assert extra["state_counts"] == {"uploaded": 48} and extra["comparison"]["equal"]
            assert extra["link_refreshes"] > 0
        async with client_for(a) as fast:
            await same_labels(fast, source_id, dst, extra["target"]["project_id"], expected)


async def test_refuses_incompatible_or_missing_targets(tmp_path):
    async with two_emulators(tmp_path) as (a, b), client_for(a) as src, client_for(b) as dst:
        await make_source(src, 3)
        await dst.create_project("classifier")
        with pytest.raises(CLIError, match="object-detection"):
            await run_migrate(src, dst, MigrateOptions("fruit", "classifier", state=tmp_path / "x.sqlite"))
        with pytest.raises(PipelineError, match="create"):
            await run_migrate(src, dst, MigrateOptions("fruit", "nowhere", state=tmp_path / "y.sqlite"))
        with pytest.raises(CLIError, match="same project"):
            await run_migrate(src, src, MigrateOptions("fruit", "fruit", state=tmp_path / "z.sqlite"))


def test_grouper_keeps_requests_under_the_limits():
    def item(i: int, tags: tuple[str, ...], meta=()) -> MigrateItem:
        return MigrateItem(str(i), f"u{i}", tags, (TaggedRegion("r", 0, 0, 1, 1),) if i % 2 else (), meta)

    g = Grouper()
    batches = []
    for i in range(200):
        batches += g.add(item(i, (f"t{i % 30}",), (("m", str(i % 2)),) if i % 4 == 0 else ()))
    batches += g.flush()
    assert sum(len(b) for b in batches) == 200
    for b in batches:
        assert len(b) <= 64
        assert len(set().union(*(i.all_tags for i in b.items))) <= 20
        assert len({i.metadata for i in b.items}) == 1 and b.metadata == b.items[0].metadata


async def test_both_sides_throttled_and_failing_still_complete(tmp_path):
    """429s on both sides and 5xx on the target: each side's client paces and retries on its own."""
    from cvbulk.emulator import Faults

    async with two_emulators(tmp_path) as (a, b), client_for(a) as src, client_for(b) as dst:
        source_id, expected = await make_source(src, 200)
        a.set_faults(Faults(throttle_burst=2))
        b.set_faults(Faults(throttle_burst=2, error_rate=0.1))
        options = MigrateOptions("fruit", "fruit-copy", create=True, by="upload", state=tmp_path / "m.sqlite",
                                 report=tmp_path / "m.json")
        with anyio.fail_after(45):
            result = await run_migrate(src, dst, options)
        b.set_faults(Faults())
        assert result.ok, result.report["failures"]
        assert result.report["extra"]["comparison"]["equal"]
        assert src.stats.snapshot()["throttled"] >= 2 and dst.stats.snapshot()["throttled"] >= 2
        assert result.report["retries"] >= 4
        await same_labels(src, source_id, dst, result.report["extra"]["target"]["project_id"], expected)
