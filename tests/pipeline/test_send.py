"""The one create-images sender (upload and migrate share it): split rules, regions matched within one
tolerance, bodies streamed from disk; and prepare refusing a huge file from its size alone."""

from __future__ import annotations

import os

from cvbulk.client import BadRequestError, FileBody
from cvbulk.pipeline.batch import Batch, BatchItem, TaggedRegion
from cvbulk.pipeline.prepare import TRAINING_LIMITS, Rejected, prepare_image
from cvbulk.pipeline.send import REGION_TOLERANCE, ImageSender, same_region
from cvbulk.pipeline.status import Status
from tests.pipeline.test_upload import FakeTraining


def _item(i: int, data: bytes | None = None, regions=()) -> BatchItem:
    return BatchItem(f"k{i}", f"{i}.jpg", data if data is not None else f"img{i}".encode(), (), regions)


def test_regions_match_within_one_tolerance_and_any_case():
    a = TaggedRegion("ABC", 0.1, 0.2, 0.3, 0.4)
    assert same_region(a, TaggedRegion("abc", 0.1 + REGION_TOLERANCE / 2, 0.2, 0.3, 0.4))
    assert not same_region(a, TaggedRegion("abc", 0.1 + 2 * REGION_TOLERANCE, 0.2, 0.3, 0.4))
    assert not same_region(a, TaggedRegion("other", 0.1, 0.2, 0.3, 0.4))


async def test_a_400_about_the_request_is_not_split_into_a_cascade():
    fake = FakeTraining()
    p = fake.add_project("p")
    fake.fail_with = [BadRequestError("unknown tag", status=400, code="BadRequestTagNotFound")]
    sender = ImageSender(fake, p.id)
    out = await sender.send(Batch("data", tuple(_item(i) for i in range(8)), ()))
    assert fake.requests == 1 and sender.splits == 0
    assert {o.status for o in out} == {Status.ERROR} and "unknown tag" in (out[0].reason or "")


async def test_a_too_big_batch_is_split_and_counted():
    fake = FakeTraining()
    p = fake.add_project("p")
    fake.max_batch = 2
    sender = ImageSender(fake, p.id)
    out = await sender.send(Batch("files", tuple(_item(i) for i in range(5)), ()))
    assert [o.status for o in out] == [Status.UPLOADED] * 5 and sender.splits >= 2


async def test_file_bodies_are_read_when_the_request_is_written(tmp_path):
    fake = FakeTraining()
    p = fake.add_project("p")
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(f"bytes of {i}".encode())
        paths.append(path)
    items = tuple(BatchItem(f"k{i}", p_.name, FileBody(p_, p_.stat().st_size)) for i, p_ in enumerate(paths))
    out = await ImageSender(fake, p.id).send(Batch("data", items, ()))
    assert [o.status for o in out] == [Status.UPLOADED] * 3
    assert [o.nbytes for o in out] == [10, 10, 10]
    # what the service stored is the files' bytes
    import hashlib

    assert set(fake.images[p.id]) == {hashlib.sha256(f"bytes of {i}".encode()).hexdigest() for i in range(3)}


async def test_a_file_changed_before_its_request_is_an_error_not_a_crash(tmp_path):
    fake = FakeTraining()
    p = fake.add_project("p")
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 10)
    item = BatchItem("k", "a.jpg", FileBody(path, 100))  # sized at 100 bytes, now 10
    out = await ImageSender(fake, p.id).send(Batch("data", (item,), ()))
    assert out[0].status == Status.ERROR and "changed" in (out[0].reason or "")


def test_a_huge_file_is_refused_from_its_size_without_being_read(tmp_path):
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as f:
        f.truncate(2 * 1024**3)  # 2 GiB, sparse: reading it whole would take 2 GiB of memory
    got = prepare_image(path, limits=TRAINING_LIMITS)
    assert isinstance(got, Rejected) and got.code == "too_large"
    os.unlink(path)
