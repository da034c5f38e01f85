"""Upload orchestration: against an in-memory fake of the training client (fast, exact fault
injection) and end to end against the real emulator (see tests/conftest.py)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import anyio
import pytest

from cvbulk.client import (
    BadRequestError,
    BytesBody,
    FileBody,
    Image,
    ImageCreateResult,
    ImageCreateSummary,
    ImageRegion,
    ImageTag,
    Project,
    ProjectSettings,
    ServerError,
    Tag,
)
from cvbulk.pipeline.batch import Batch, BatchItem
from cvbulk.pipeline.errors import ConfigError as CLIError
from cvbulk.pipeline.errors import ProjectNotFound
from cvbulk.pipeline.journal import Journal
from cvbulk.pipeline.send import ImageSender as BatchSender
from cvbulk.pipeline.scan import excluded_by
from cvbulk.pipeline.upload import UploadOptions, default_state_path, run_upload
from tests.corpus import make_tree

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"



def _bytes(image) -> bytes:
    """The bytes of an image argument (bytes or an ImageBody), read at once: no checkpoint, so the fake's
    requests interleave as the real service's answers would, not at every chunk."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, BytesBody):
        return image.data
    assert isinstance(image, FileBody)
    data = image.path.read_bytes()
    if len(data) != image.size:
        raise OSError(f"{image.path} changed while it was sent")
    return data

class FakeTraining:
    """Just enough of TrainingClient: content-addressed images, per-image statuses, faults."""

    def __init__(self) -> None:
        self.projects: dict[str, Project] = {}
        self.tags: dict[str, list[Tag]] = {}
        self.images: dict[str, dict[str, Image]] = {}  # project -> sha -> image
        self.requests = 0
        self.max_batch: int | None = None  # larger batches answer 400 BadRequestExceededBatchSize
        self.fail_with: list[Exception] = []  # raised by the next create calls
        self.refuse: set[bytes] = set()  # contents answered ErrorImageFormat
        self.on_create = None  # awaited before each create (for cancellation tests)
        self.tag_calls: list[tuple[str, str]] = []

    @staticmethod
    def now() -> str:
        from datetime import datetime, timezone

        return datetime.now(timezone.utc).isoformat()

    def add_project(self, name: str) -> Project:
        p = Project(id=str(uuid.uuid4()), name=name, settings=ProjectSettings(domain_id=None))
        self.projects[p.id] = p
        self.tags[p.id] = []
        self.images[p.id] = {}
        return p

    async def get_projects(self):
        return list(self.projects.values())

    async def get_project(self, pid):
        from cvbulk.client import NotFoundError

        if pid not in self.projects:
            raise NotFoundError("no project", status=404, code="NotFoundProject")
        return self.projects[pid]

    async def create_project(self, name, **kw):
        return self.add_project(name)

    async def get_domain(self, domain_id):
        raise AssertionError("not used")

    async def get_tags(self, pid):
        return list(self.tags[pid])

    async def create_tag(self, pid, name):
        t = Tag(id=str(uuid.uuid4()), name=name)
        self.tags[pid].append(t)
        return t

    def _tag(self, pid, tid):
        return next(t for t in self.tags[pid] if t.id == tid)

    async def _create(self, pid, named: list[tuple[str, bytes, tuple[str, ...], tuple]]):
        self.requests += 1
        if self.on_create is not None:
            await self.on_create()
        if self.fail_with:
            raise self.fail_with.pop(0)
        if self.max_batch is not None and len(named) > self.max_batch:
            raise BadRequestError("too big", status=400, code="BadRequestExceededBatchSize")
        results = []
        for name, data, tag_ids, regions in named:
            if data in self.refuse:
                results.append(ImageCreateResult(source_url=f'"{name}"', status="ErrorImageFormat"))
                continue
            sha = hashlib.sha256(data).hexdigest()
            existing = self.images[pid].get(sha)
            if existing is not None:
                results.append(ImageCreateResult(source_url=f'"{name}"', status="OKDuplicate", image=existing))
                continue
            img = Image(
                id=str(uuid.uuid4()),
                created=self.now(),
                tags=tuple(ImageTag(tag_id=t, tag_name=self._tag(pid, t).name) for t in tag_ids),
                regions=tuple(
                    ImageRegion(region_id=str(uuid.uuid4()), tag_id=r.tag_id, left=r.left, top=r.top,
                                width=r.width, height=r.height)
                    for r in regions
                ),
            )
            self.images[pid][sha] = img
            results.append(ImageCreateResult(source_url=f'"{name}"', status="OK", image=img))
        ok = all(r.status == "OK" for r in results)
        return ImageCreateSummary(is_batch_successful=ok, images=tuple(results))

    async def create_images_from_data(self, pid, images, *, tag_ids=()):
        return await self._create(pid, [(n, _bytes(d), tuple(tag_ids), ()) for n, d in images])

    async def create_images_from_files(self, pid, entries, *, tag_ids=(), metadata=None):
        return await self._create(
            pid, [(e.name, _bytes(e.contents), tuple(e.tag_ids), tuple(e.regions)) for e in entries]
        )

    async def create_image_tags(self, pid, pairs):
        from cvbulk.client import ImageTagCreateSummary

        self.tag_calls += list(pairs)
        by_id = {img.id: (sha, img) for sha, img in self.images[pid].items()}
        for image_id, tag_id in pairs:
            sha, img = by_id[image_id]
            img.tags = tuple(img.tags or ()) + (ImageTag(tag_id=tag_id),)
        return ImageTagCreateSummary()

    def tag_counts(self, pid) -> dict[str, int]:
        names = {t.id: t.name for t in self.tags[pid]}
        out: dict[str, int] = {}
        for img in self.images[pid].values():
            for t in img.tags or ():
                out[names[t.tag_id]] = out.get(names[t.tag_id], 0) + 1
        return out


def bi(i: int, data: bytes | None = None, tags=("t",), regions=()) -> BatchItem:
    return BatchItem(f"k{i}", f"{i}.jpg", data if data is not None else f"img{i}".encode(), tags, regions)


# -- the sender ------------------------------------------------------------------------------------


async def test_sender_maps_per_image_statuses():
    fake = FakeTraining()
    p = fake.add_project("p")
    tag = await fake.create_tag(p.id, "t")
    sender = BatchSender(fake, p.id)
    await sender.send(Batch("data", (bi(0),), (tag.id,)))
    fake.refuse.add(b"bad")
    # k9 has k0's bytes (a twin: duplicate); k3 was left `sending` by a killed run (ours)
    items = (bi(9, b"img0"), bi(1), bi(2, b"bad"), bi(3, b"img3"))
    await fake.create_images_from_data(p.id, [("x", b"img3")], tag_ids=[tag.id])
    out = await sender.send(Batch("data", items, (tag.id,)), prior={"k3": "sending"})
    assert [o.status for o in out] == ["duplicate", "uploaded", "failed", "uploaded"]
    assert out[2].reason.startswith("ErrorImageFormat")
    assert out[1].image_id


async def test_duplicate_created_by_our_own_retried_request_counts_as_uploaded():
    fake = FakeTraining()
    p = fake.add_project("p")
    old = await fake.create_images_from_data(p.id, [("old", b"old")])
    old.images[0].image.created = "2020-01-01T00:00:00.000Z"  # in the project long before the run
    sender = BatchSender(fake, p.id)
    # the first attempt went through but its answer was lost; the client's retry gets OKDuplicate
    await fake.create_images_from_data(p.id, [("00-a.jpg", b"lost")])
    out = await sender.send(Batch("data", (bi(0, b"lost", ()), bi(1, b"old", ())), ()))
    assert [o.status for o in out] == ["uploaded", "duplicate"]


async def test_sender_splits_a_batch_the_service_finds_too_big():
    fake = FakeTraining()
    p = fake.add_project("p")
    fake.max_batch = 3
    sender = BatchSender(fake, p.id)
    out = await sender.send(Batch("data", tuple(bi(i, tags=()) for i in range(10)), ()))
    assert [o.status for o in out] == ["uploaded"] * 10
    assert len(fake.images[p.id]) == 10
    assert sender.splits >= 2


async def test_sender_records_retryable_failures_as_error_and_never_drops():
    fake = FakeTraining()
    p = fake.add_project("p")
    fake.fail_with = [ServerError("boom", status=503)]
    out = await BatchSender(fake, p.id).send(Batch("data", (bi(0, tags=()), bi(1, tags=())), ()))
    assert [o.status for o in out] == ["error", "error"]
    assert "503" in out[0].reason


async def test_duplicate_with_other_tags_gets_the_missing_ones():
    fake = FakeTraining()
    p = fake.add_project("p")
    a, b = await fake.create_tag(p.id, "a"), await fake.create_tag(p.id, "b")
    sender = BatchSender(fake, p.id)
    await sender.send(Batch("data", (bi(0, tags=(a.id,)),), (a.id,)))
    out = await sender.send(Batch("data", (bi(1, b"img0", tags=(b.id,)),), (b.id,)))
    assert out[0].status == "duplicate"
    assert fake.tag_calls == [(out[0].image_id, b.id)]
    assert fake.tag_counts(p.id) == {"a": 1, "b": 1}


async def test_image_with_more_than_20_tags_gets_the_rest_afterwards():
    fake = FakeTraining()
    p = fake.add_project("p")
    tags = [await fake.create_tag(p.id, f"t{i:02d}") for i in range(25)]
    ids = tuple(t.id for t in tags)
    out = await BatchSender(fake, p.id).send(Batch("files", (bi(0, tags=ids),)))
    assert out[0].status == "uploaded"
    assert len(fake.tag_calls) == 5
    assert sum(fake.tag_counts(p.id).values()) == 25


# -- the pipeline with the fake --------------------------------------------------------------------


def opts(tmp_path: Path, root: Path, project: str, **kw) -> UploadOptions:
    return UploadOptions(root=root, project=project, state=tmp_path / "state.sqlite",
                         report=tmp_path / "report.json", **kw)


async def test_pipeline_uploads_a_tree_and_a_second_run_sends_nothing(tmp_path):
    root = tmp_path / "tree"
    expected = make_tree(root, {"a": 70, "b": 5})
    fake = FakeTraining()
    p = fake.add_project("proj")
    with anyio.fail_after(30):
        result = await run_upload(fake, opts(tmp_path, root, "proj"))
    assert result.ok, result.report
    assert result.report["counts"] == {"uploaded": 75}
    assert fake.tag_counts(p.id) == {"a": 70, "b": 5}
    requests = fake.requests
    assert requests <= 4  # 70 a's in two batches, 5 b's in one (or a lingering split)
    again = await run_upload(fake, opts(tmp_path, root, "proj"))
    assert again.ok
    assert fake.requests == requests
    assert again.report["extra"]["unchanged"] == len(expected)
    assert (tmp_path / "report.json").exists()


async def test_pipeline_cancelled_midway_resumes_without_loss_or_duplicates(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"a": 100, "b": 60})
    fake = FakeTraining()
    p = fake.add_project("proj")
    fake.max_batch = 16  # more requests, so that the cancel lands in the middle

    with anyio.CancelScope() as scope:
        async def cancel_after_some():
            if fake.requests >= 4:
                scope.cancel()
                await anyio.sleep_forever()  # cancelled right here, mid-request

        fake.on_create = cancel_after_some
        await run_upload(fake, opts(tmp_path, root, "proj"))
    assert scope.cancelled_caught
    partial = len(fake.images[p.id])
    assert 0 < partial < 160
    with Journal.open(tmp_path / "state.sqlite", job="upload", fingerprint={"root": str(root.resolve()), "project_id": p.id}) as j:
        assert j.counts().get("sending", 0) > 0  # the batch in flight at the cancel

    fake.on_create = None
    result = await run_upload(fake, opts(tmp_path, root, "proj"))
    assert result.ok
    assert len(fake.images[p.id]) == 160
    assert fake.tag_counts(p.id) == {"a": 100, "b": 60}
    counts = result.report["counts"]
    assert "duplicate" not in counts and "error" not in counts


async def test_unlabelled_files_are_skipped_unless_untagged(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"a": 2})
    shutil.copy(root / "a" / "a_0000.jpg", root / "loose.jpg")
    (root / "loose.jpg").write_bytes((root / "loose.jpg").read_bytes() + b"\0")  # new content
    fake = FakeTraining()
    p = fake.add_project("proj")
    r1 = await run_upload(fake, opts(tmp_path, root, "proj"))
    assert r1.report["counts"] == {"uploaded": 2, "skipped": 1}
    assert r1.ok
    r2 = await run_upload(fake, opts(tmp_path, root, "proj", untagged=True))
    assert r2.report["counts"] == {"uploaded": 1}
    assert len(fake.images[p.id]) == 3


async def test_dry_run_sends_nothing_and_counts_per_tag(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"a": 3, "b": 2})
    (root / "b" / "junk.jpg").write_text("not an image")
    fake = FakeTraining()
    fake.add_project("proj")
    result = await run_upload(fake, opts(tmp_path, root, "proj", dry_run=True))
    assert fake.requests == 0
    would = result.report["extra"]["would_send"]
    assert would["images"] == 5
    assert would["per_tag"] == [{"tag": "a", "images": 3}, {"tag": "b", "images": 2}]
    assert would["tags_to_create"] == ["a", "b"]
    assert result.report["failures"][0]["path"] == "b/junk.jpg"
    assert not result.ok
    assert not (tmp_path / "state.sqlite").exists()


async def test_unknown_project_is_exit_3_and_two_of_a_name_exit_2(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"a": 1})
    fake = FakeTraining()
    with pytest.raises(ProjectNotFound):  # the CLI exits 3
        await run_upload(fake, opts(tmp_path, root, "nope"))
    one, two = fake.add_project("twin"), fake.add_project("twin")
    with pytest.raises(CLIError) as err:
        await run_upload(fake, opts(tmp_path, root, "twin"))
    assert isinstance(err.value, CLIError)
    assert one.id in str(err.value) and two.id in str(err.value)


def test_exclude_matches_folders_files_and_paths():
    assert excluded_by("Test/test_image.jpg", ["Test"]) == "Test"
    assert excluded_by("a/b/c.png", ["x", "*.png"]) == "*.png"
    assert excluded_by("a/b/c.png", ["a/b/"]) == "a/b/"
    assert excluded_by("Hemlock/h.jpg", ["Test"]) is None


def test_default_state_path_is_stable_and_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = default_state_path(Path("x"), "my proj")
    assert p.parent == tmp_path / ".cvbulk" and p.name.startswith("upload-my_proj-")
    assert p == default_state_path(Path("x"), "my proj")
    assert default_state_path(Path("x"), "my proj", tmp_path / "r" / "rep.json").parent == tmp_path / "r"


# -- end to end against the emulator -----------------------------------------------------------


async def tag_counts(client, project_id) -> dict[str, int]:
    return {t.name: t.image_count for t in await client.get_tags(project_id)}


async def test_samples_classification_end_to_end(tmp_path, training_client):
    images = SAMPLES / "ImageClassification" / "Images"
    o = opts(tmp_path, images, "trees", create=True, exclude=("Test",))
    with anyio.fail_after(60):
        result = await run_upload(training_client, o)
    assert result.ok, result.report["failures"]
    # The excluded file is a candidate too: skipped, with the pattern that left it out.
    assert result.report["counts"] == {"uploaded": 20, "skipped": 1}
    assert result.report["extra"]["skipped"] == [{"path": "Test/test_image.jpg", "reason": "excluded by --exclude Test"}]
    project = result.report["extra"]["project"]
    assert project["created"] is True
    pid = project["id"]
    assert await training_client.get_image_count(pid) == 20
    assert await tag_counts(training_client, pid) == {"Hemlock": 10, "Japanese_Cherry": 10}
    creates = []

    async def counted(*args, **kwargs):
        creates.append(args)
        raise AssertionError("a second run must send no image")

    training_client.create_images_from_data = training_client.create_images_from_files = counted
    again = await run_upload(training_client, o)
    assert again.ok
    assert again.report["counts"] == {}
    assert again.report["extra"]["unchanged"] == 21
    assert creates == []
    assert await training_client.get_image_count(pid) == 20


async def test_samples_detection_regions_end_to_end(tmp_path, training_client):
    images = SAMPLES / "ObjectDetection" / "Images"
    o = opts(tmp_path, images, "cutlery", create=True, labels=str(SAMPLES / "od_regions.json"))
    with anyio.fail_after(60):
        result = await run_upload(training_client, o)
    assert result.ok, result.report["failures"]
    # the test image has no regions: skipped, not uploaded
    assert result.report["counts"] == {"uploaded": 40, "skipped": 1}
    pid = result.report["extra"]["project"]["id"]
    project = await training_client.get_project(pid)
    domain = await training_client.get_domain(project.settings.domain_id)
    assert domain.type == "ObjectDetection"
    imgs = [i async for i in training_client.iter_images(pid)]
    assert len(imgs) == 40
    assert all(len(i.regions or ()) >= 1 for i in imgs)
    names = {t.id: t.name for t in await training_client.get_tags(pid)}
    assert sorted(names.values()) == ["fork", "scissors"]
    counts: dict[str, int] = {}
    for i in imgs:
        for r in i.regions:
            counts[names[r.tag_id]] = counts.get(names[r.tag_id], 0) + 1
    assert counts == {"fork": 20, "scissors": 20}


async def test_bad_corpus_every_file_has_its_outcome_and_exit_1(tmp_path, training_client):
    from tests.corpus import make_bad_corpus, restore_permissions, vanish_after_scan

    root = tmp_path / "tree"
    expected = make_bad_corpus(root)
    try:
        o = opts(tmp_path, root, "bad-input", create=True)
        with anyio.fail_after(60), vanish_after_scan(root):
            result = await run_upload(training_client, o)
    finally:
        restore_permissions(root)
    assert not result.ok
    pid = result.report["extra"]["project"]["id"]
    fp = {"root": str(root.resolve()), "project_id": pid}
    with Journal.open(tmp_path / "state.sqlite", job="upload", fingerprint=fp) as j:
        rows = {e.key: e for e in j.entries()}
    assert set(rows) == set(expected)
    dups = {k for k, e in rows.items() if e.status == "duplicate"}
    assert dups in ({"bad/dup_a.jpg"}, {"bad/dup_b.jpg"})  # whichever of the twins went second
    for key, outcome in expected.items():
        e = rows[key]
        if key in ("bad/dup_a.jpg", "bad/dup_b.jpg"):
            continue
        if outcome == "fixed":
            assert e.status == "uploaded" and e.fixes, (key, e)
        elif outcome == "uploaded":
            assert e.status == "uploaded" and not e.fixes, (key, e)
        else:
            assert e.status == outcome, (key, e)
        if outcome in ("rejected", "skipped"):
            assert e.reason and "\n" not in e.reason
    uploaded = sum(1 for e in rows.values() if e.status == "uploaded")
    assert await training_client.get_image_count(pid) == uploaded
    reasons = {f["path"]: f["reason"] for f in result.report["failures"]}
    assert set(reasons) == {k for k, v in expected.items() if v == "rejected"}


async def test_csv_manifest_multilabel_end_to_end(tmp_path, training_client):
    root = tmp_path / "tree"
    files = make_tree(root, {"x": 12})
    rows = ["path,tags"]
    combos = ["red", "red;round", "blue;round", "blue", "green;round;red"]
    for i, rel in enumerate(sorted(files)):
        rows.append(f'{rel},"{combos[i % len(combos)]}"')
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    o = opts(tmp_path, root, "multi", create=True, labels=str(manifest), classification_type="Multilabel")
    with anyio.fail_after(60):
        result = await run_upload(training_client, o)
    assert result.ok, result.report["failures"]
    pid = result.report["extra"]["project"]["id"]
    want: dict[str, int] = {}
    for i in range(12):
        for t in combos[i % len(combos)].split(";"):
            want[t] = want.get(t, 0) + 1
    assert await tag_counts(training_client, pid) == want
    project = await training_client.get_project(pid)
    assert project.settings.classification_type == "Multilabel"


async def test_tag_limit_is_checked_before_any_upload(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {f"t{i:02d}": 1 for i in range(51)})
    fake = FakeTraining()
    p = fake.add_project("proj")
    with pytest.raises(CLIError) as err:
        await run_upload(fake, opts(tmp_path, root, "proj", tier="F0"))
    assert "allows 50" in str(err.value)
    assert fake.requests == 0 and fake.tags[p.id] == []


async def test_cancelled_in_process_against_the_emulator_then_resumed(tmp_path, training_client):
    root = tmp_path / "tree"
    expected = make_tree(root, {"a": 90, "b": 50})
    o = opts(tmp_path, root, "cancel-me", create=True, batch_bytes=20_000, max_concurrency=4)
    real = training_client.create_images_from_data
    calls = 0

    with anyio.CancelScope() as scope:
        async def cancelling(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == 6:
                scope.cancel()  # lands while this request and its neighbours are in flight
            return await real(*args, **kwargs)

        training_client.create_images_from_data = cancelling
        with anyio.fail_after(60):
            await run_upload(training_client, o)
    training_client.create_images_from_data = real
    assert scope.cancelled_caught
    pid = (await resolve(training_client, "cancel-me")).id
    assert 0 < await training_client.get_image_count(pid) < len(expected)

    with anyio.fail_after(60):
        result = await run_upload(training_client, o)
    assert result.ok, result.report["failures"]
    assert "duplicate" not in result.report["counts"]
    assert await training_client.get_image_count(pid) == len(expected)
    assert await tag_counts(training_client, pid) == {"a": 90, "b": 50}


async def resolve(client, name):
    from cvbulk.pipeline.project import resolve_project

    return await resolve_project(client, name)


async def test_a_bad_image_in_a_refused_batch_is_isolated_and_a_request_error_is_not_split():
    fake = FakeTraining()
    p = fake.add_project("p")
    real = fake._create

    async def picky(pid, named):
        if any(d == b"poison" for _, d, _, _ in named):
            fake.requests += 1
            raise BadRequestError("bad image", status=400, code="BadRequestImageFormat")
        return await real(pid, named)

    fake._create = picky
    sender = BatchSender(fake, p.id)
    items = tuple(bi(i, tags=()) for i in range(7)) + (bi(7, b"poison", ()),)
    out = await sender.send(Batch("data", items, ()))
    assert [o.status for o in out] == ["uploaded"] * 7 + ["failed"]
    assert "BadRequestImageFormat" in out[-1].reason
    fake.requests = 0
    fake.fail_with = [BadRequestError("no such tag", status=400, code="BadRequestInvalidIds")]
    out = await sender.send(Batch("data", tuple(bi(10 + i, tags=()) for i in range(8)), ()))
    assert [o.status for o in out] == ["error"] * 8 and fake.requests == 1


async def test_unreadable_root_is_a_usage_error(tmp_path, monkeypatch):
    from cvbulk.pipeline import scan as scan_mod

    root = tmp_path / "tree"
    make_tree(root, {"a": 1})
    fake = FakeTraining()
    fake.add_project("proj")

    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(scan_mod, "_scandir", refuse)
    with pytest.raises(CLIError) as err:
        await run_upload(fake, opts(tmp_path, root, "proj"))
    assert isinstance(err.value, CLIError) and "permission denied" in str(err.value)


async def test_senders_hold_at_most_the_inflight_byte_budget(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"a": 60})
    fake = FakeTraining()
    p = fake.add_project("proj")
    inflight = peak = 0
    real = fake._create

    async def slow(pid, named):
        nonlocal inflight, peak
        size = sum(len(d) for _, d, _, _ in named)
        inflight += size
        peak = max(peak, inflight)
        await anyio.sleep(0.01)  # overlap: let every sender that may hold a batch get one
        try:
            return await real(pid, named)
        finally:
            inflight -= size

    fake._create = slow
    size = (root / "a" / "a_0000.jpg").stat().st_size
    o = opts(tmp_path, root, "proj", batch_bytes=4 * size + 10, max_inflight_bytes=8 * size + 20,
             max_concurrency=8)
    with anyio.fail_after(30):
        result = await run_upload(fake, o)
    assert result.ok and len(fake.images[p.id]) == 60
    assert peak <= 8 * size + 20 + 4 * size  # the budget, give or take one batch's headroom
