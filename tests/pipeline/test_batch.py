from __future__ import annotations

import anyio
import pytest

from cvbulk.pipeline.batch import (
    Batch,
    Batcher,
    BatchItem,
    TaggedRegion,
    batch_stream,
    wire_size,
)


def item(i: int, tags: tuple[str, ...] = ("a",), size: int = 10, regions=()) -> BatchItem:
    return BatchItem(key=f"k{i}", name=f"{i}.jpg", body=b"x" * size, tag_ids=tags, regions=regions)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_same_tag_set_fills_a_data_batch_of_64():
    b = Batcher()
    out = []
    for i in range(130):
        out += b.add(item(i))
    assert [len(x) for x in out] == [64, 64]
    assert all(x.kind == "data" and x.tag_ids == ("a",) for x in out)
    rest = b.flush()
    assert [len(x) for x in rest] == [2]
    assert b.pending == 0


def test_tag_sets_get_their_own_data_batches_order_free():
    b = Batcher()
    b.add(item(1, ("b", "a")))
    b.add(item(2, ("a", "b")))
    b.add(item(3, ("c",)))
    batches = b.flush()
    assert sorted((x.tag_ids, len(x)) for x in batches) == [(("a", "b"), 2), (("c",), 1)]


def test_regions_go_to_files_batches():
    r = (TaggedRegion("t1", 0.1, 0.1, 0.5, 0.5),)
    b = Batcher()
    b.add(item(1, ("t1",), regions=r))
    b.add(item(2, ("x",)))
    batches = {x.kind: x for x in b.flush()}
    assert len(batches["files"]) == 1 and batches["files"].items[0].regions == r
    assert batches["data"].tag_ids == ("x",)


def test_byte_budget_counts_base64_for_files_and_raw_for_data():
    b = Batcher(max_bytes=100)
    out = []
    for i in range(5):
        out += b.add(item(i, size=30))
    # 30 raw bytes each: three fit in 100, the fourth starts a new batch
    assert [len(x) for x in out] == [3]
    assert wire_size(item(0, size=30), "files") == 40
    b2 = Batcher(max_bytes=100)
    out2 = []
    r = (TaggedRegion("a", 0, 0, 1, 1),)
    for i in range(5):
        out2 += b2.add(item(i, size=30, regions=r))
    assert [len(x) for x in out2] == [2, 2]  # 40 wire bytes each: two fit, the second pair fills it
    assert all(x.nbytes <= 100 for x in out2)


def test_oversized_image_travels_alone():
    b = Batcher(max_bytes=100)
    out = b.add(item(1, size=500))
    assert [len(x) for x in out] == [1]


def test_files_batch_holds_at_most_20_distinct_tags():
    b = Batcher(max_open_groups=1)
    out = []
    b.add(item(0, ("t0",)))  # takes the only data group
    for i in range(1, 30):
        out += b.add(item(i, (f"t{i}",)))
    out += b.flush()
    for x in out:
        tags = {t for it in x.items for t in it.tag_ids}
        assert len(tags) <= 20
    assert sum(len(x) for x in out) == 30
    assert any(x.kind == "files" for x in out)


def test_image_with_more_than_20_tags_goes_alone():
    b = Batcher()
    b.add(item(1, ("a",), regions=(TaggedRegion("a", 0, 0, 1, 1),)))
    many = tuple(f"t{i:02d}" for i in range(25))
    out = b.add(item(2, many))
    assert [len(x) for x in out] == [1, 1]
    assert out[1].items[0].tag_ids == many


def test_open_bytes_are_bounded():
    b = Batcher(max_bytes=1000, max_open_bytes=150)
    out = []
    for i in range(6):
        out += b.add(item(i, (f"t{i}",), size=40))
    assert out  # the largest group went early
    assert b.pending * 40 <= 150


def test_linger_flushes_everything_when_the_upstream_is_quiet():
    clock = Clock()
    b = Batcher(clock=clock)
    b.add(item(1, ("a",)))
    clock.now = 1.0
    b.add(item(2, ("b",)))
    clock.now = 1.1
    assert b.flush_lingering(0.25) == []  # an image came 0.1 s ago: keep filling
    clock.now = 1.3
    assert sorted(x.tag_ids for x in b.flush_lingering(0.25)) == [("a",), ("b",)]
    assert b.pending == 0


def test_while_images_keep_coming_only_old_groups_go():
    clock = Clock()
    b = Batcher(clock=clock)
    b.add(item(1, ("rare",)))
    for i in range(30):
        clock.now += 0.1
        b.add(item(100 + i, ("busy",)))
        out = b.flush_lingering(0.25, max_age=2.0)
        if out:
            break
    assert [x.tag_ids for x in out] == [("rare",)]
    assert clock.now >= 2.0


def test_split_halves():
    batch = Batch("data", tuple(item(i) for i in range(5)), ("a",))
    left, right = batch.split()
    assert [len(left), len(right)] == [2, 3]
    assert left.tag_ids == right.tag_ids == ("a",)
    with pytest.raises(ValueError):
        Batch("data", (item(0),)).split()


async def test_batch_stream_flushes_a_partial_batch_while_the_upstream_is_quiet():
    items_send, items_recv = anyio.create_memory_object_stream[BatchItem](8)
    batch_send, batch_recv = anyio.create_memory_object_stream[Batch](8)
    got: list[Batch] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: batch_stream(
                    items_recv, batch_send, Batcher(), linger=0.05, ticker_send=items_send.clone()
                )
            )
            async with items_send:
                await items_send.send(item(1))
                # the upstream stays open: only the linger can release this batch
                got.append(await batch_recv.receive())
                await items_send.send(item(2))
                await items_send.send(item(3))
            async with batch_recv:
                async for b in batch_recv:
                    got.append(b)
    assert sum(len(b) for b in got) == 3
    assert got[0].keys == ["k1"]


async def test_batch_stream_without_ticker_flushes_at_end():
    items_send, items_recv = anyio.create_memory_object_stream[BatchItem](200)
    batch_send, batch_recv = anyio.create_memory_object_stream[Batch](8)
    async with items_send:
        for i in range(100):
            items_send.send_nowait(item(i))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(batch_stream, items_recv, batch_send, Batcher())
            got = [b async for b in batch_recv]
    assert [len(b) for b in got] == [64, 36]


def test_images_with_metadata_go_in_requests_of_their_own_map():
    b = Batcher(max_open_groups=2)
    cam1, cam2, cam3 = ((("source", "cam1"),), (("source", "cam2"),), (("source", "cam3"),))

    def meta(i: int, m: tuple) -> BatchItem:
        return BatchItem(key=str(i), name=f"{i}.jpg", body=b"x" * 10, tag_ids=("a",), metadata=m)

    out = [*b.add(item(0)), *b.add(meta(1, cam1)), *b.add(meta(2, cam2)), *b.add(meta(3, cam1))]
    assert out == []  # the plain image waits in its data group, each map in a files group of its own
    out = b.add(meta(4, cam3))  # a third map with two open: the fullest (cam1) goes early
    assert [(x.kind, x.metadata, x.keys) for x in out] == [("files", cam1, ["1", "3"])]
    rest = {(x.kind, x.metadata): x.keys for x in b.flush()}
    assert rest == {("data", ()): ["k0"], ("files", cam2): ["2"], ("files", cam3): ["4"]}
