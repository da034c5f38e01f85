"""Upload under the emulator's misbehaviour switches: every valid image ends in the project exactly once.

Each test uploads a generated tree of 240 tiny jpgs (two tags) with ``run_upload`` through a real
TrainingClient into a project created beforehand with the faults off, then checks with the faults off
again: the report says 240 uploaded, the project holds exactly those 240 contents once each, with the
right tag, and get_image_count / get_tagged_image_count agree.
"""

from __future__ import annotations

import zlib
from functools import partial

import anyio
import pytest

from cvbulk.client import Timeouts
from cvbulk.emulator import EmulatorConfig, EmulatorThread, Faults, Latency
from cvbulk.pipeline.upload import UploadOptions, run_upload

from .conftest import (
    CrashingEmulator,
    check_project,
    integrity,
    measure,
    outage_retry,
    restartable_port,
    sha_of_files,
    small_tree,
    training_client,
)

pytestmark = pytest.mark.timeout(90)

PER_TAG = 120
# A small byte budget: ~6 images per request, so that ~40 create requests meet the dice.
BATCH_BYTES = 6000


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    config = EmulatorConfig(data_dir=tmp_path_factory.mktemp("emulator"), seed=9)
    with EmulatorThread(config) as emu:
        yield emu


async def _upload(emu, tmp_path, name: str, *, before=None, during=None, client_kw=None) -> dict:
    """Create the project cleanly, flip the switches (``before``), upload (``during`` runs alongside
    with the client), switch everything off, check the project. Returns the measured row."""
    root = tmp_path / "tree"
    tag_of = small_tree(root, PER_TAG, seed=zlib.crc32(name.encode()) % 1000)  # stable across runs
    expected = sha_of_files(root, tag_of)
    async with training_client(emu) as clean:
        project = await clean.create_project(name)
    if before is not None:
        before()
    try:
        async with training_client(emu, **(client_kw or {})) as client:
            options = UploadOptions(
                root=root, project=name, state=tmp_path / "state.sqlite", report=tmp_path / "report.json",
                tier="unlimited", max_concurrency=8, batch_bytes=BATCH_BYTES,
            )
            async with anyio.create_task_group() as tg:
                if during is not None:
                    tg.start_soon(during, client)
                result = await run_upload(client, options)
                tg.cancel_scope.cancel()
            stats = client.stats.snapshot()
    finally:
        emu.set_faults(Faults())
        emu.set_latency(Latency())
    report = result.report
    assert result.ok, report.get("failures")
    assert report["counts"] == {"uploaded": len(tag_of)}, report["counts"]
    assert not report.get("failures")
    async with training_client(emu) as clean:
        counts = await check_project(clean, project.id, expected, tag_of)
    assert counts["in_project"] == report["counts"]["uploaded"]
    assert integrity(tmp_path / "state.sqlite") == "ok"
    return {
        "images_sent": len(tag_of),
        "requests": stats["requests"],
        "retries": stats["retries"],
        "throttled": stats["throttled"],
        "server_errors": stats["server_errors"],
        "transport_errors": stats["transport_errors"],
        **counts,
    }


async def test_ten_percent_500_503(emu, tmp_path):
    row = await _upload(emu, tmp_path, "faults-5xx", before=lambda: emu.set_faults(Faults(error_rate=0.10)))
    assert row["server_errors"] > 0  # the dice did roll
    measure("upload: 10% answered 500/503", **row)


async def test_five_percent_connections_dropped(emu, tmp_path):
    # Half the drops come after the images were stored: the retry meets its own first attempt
    # (OKDuplicate), which must count as uploaded, not as a duplicate and not twice.
    row = await _upload(emu, tmp_path, "faults-drop", before=lambda: emu.set_faults(Faults(drop_rate=0.05)))
    assert row["transport_errors"] > 0
    measure("upload: 5% connections dropped", **row)


async def test_errors_and_drops_together(emu, tmp_path):
    faults = Faults(error_rate=0.10, drop_rate=0.05, drop_after_work=1.0)
    row = await _upload(emu, tmp_path, "faults-mixed", before=lambda: emu.set_faults(faults))
    assert row["server_errors"] > 0 and row["transport_errors"] > 0
    measure("upload: 10% 5xx + 5% dropped after the work", **row)


async def test_burst_of_429_with_retry_after(emu, tmp_path):
    row = await _upload(emu, tmp_path, "faults-429", before=lambda: emu.set_faults(Faults(throttle_burst=6)))
    assert row["throttled"] == 6
    measure("upload: burst of 6 x 429 with Retry-After", **row)


@pytest.mark.timeout(90)
async def test_burst_of_429_without_retry_after(tmp_path):
    # No header: the client reads "Please retry after 1 second" from the message.
    config = EmulatorConfig(data_dir=tmp_path / "emulator", retry_after=False, seed=3)
    with EmulatorThread(config) as emu:
        row = await _upload(emu, tmp_path, "faults-429-bare", before=lambda: emu.set_faults(Faults(throttle_burst=6)))
    assert row["throttled"] == 6
    measure("upload: burst of 6 x 429 without Retry-After", **row)


async def test_latency_spike_over_the_client_timeout(emu, tmp_path):
    """Answers come 0.6 s late against a 0.25 s client timeout until a dozen attempts have timed out:
    the images were stored each time (the emulator waits after the work), so the retries find them."""

    async def end_spike(client) -> None:
        with anyio.fail_after(60):
            while client.stats.transport_errors < 12:
                await anyio.sleep(0.01)  # watching the client's counters, not waiting for a result
        emu.set_latency(Latency())

    row = await _upload(
        emu, tmp_path, "faults-latency",
        before=lambda: emu.set_latency(Latency(per_request=0.6)),
        during=end_spike,
        client_kw={"timeouts": Timeouts(connect=1.0, read=0.25, total=0.5)},
    )
    assert row["transport_errors"] >= 12
    measure("upload: latency spike 0.6 s over a 0.25 s timeout", **row)


@pytest.mark.timeout(90)
async def test_emulator_stopped_and_restarted_mid_run(tmp_path):
    """The service goes away after 15 requests and comes back on the same port with the same data."""
    data = tmp_path / "emulator"
    first = EmulatorThread(EmulatorConfig(port=restartable_port(), data_dir=data, latency=Latency(per_request=0.02),
                                          seed=5)).start()
    holder = {"emu": first}

    class _Switches:  # what _upload flips, forwarded to whichever emulator is up
        endpoint = first.endpoint
        training_key = first.training_key

        def set_faults(self, f):
            holder["emu"].set_faults(f)

        def set_latency(self, lat):
            holder["emu"].set_latency(lat)

    restarted = anyio.Event()

    async def restart(client) -> None:
        with anyio.fail_after(60):
            while client.stats.requests < 15:
                await anyio.sleep(0.005)
        await anyio.to_thread.run_sync(first.stop)
        second = EmulatorThread(EmulatorConfig(port=first.port, data_dir=data, seed=6))
        await anyio.to_thread.run_sync(second.start)
        holder["emu"] = second
        restarted.set()

    try:
        row = await _upload(_Switches(), tmp_path, "faults-restart", during=restart)
    finally:
        holder["emu"].stop()
        first.stop()
    assert restarted.is_set(), "the upload finished before the restart: make it slower"
    assert row["transport_errors"] > 0
    assert integrity(data / "emulator.sqlite3") == "ok"
    measure("upload: emulator stopped and restarted mid-run", **row)


async def test_create_under_dropped_answers_leaves_one_project(tmp_path):
    """Half the answers are lost after the service did the work, from the first request on: what
    ``upload --create`` does (find_or_create_project, ensure_tags) must still create each project and
    tag once, or the next run cannot find the project by name. Eight projects, so that some
    CreateProject answers are surely lost whatever the order of the dice."""
    from cvbulk.pipeline.project import ensure_tags, find_or_create_project

    names = [f"created-once-{i}" for i in range(8)]
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emulator", seed=1)) as emu:
        emu.set_faults(Faults(drop_rate=0.5, drop_after_work=1.0))
        try:
            async with training_client(emu) as client:
                for name in names:
                    project, created = await find_or_create_project(client, name, create=True)
                    await ensure_tags(client, project.id, ["a", "b"])
                dropped = client.stats.transport_errors
        finally:
            emu.set_faults(Faults())
        assert dropped > 0
        async with training_client(emu) as client:
            projects = await client.get_projects()
            counts = {name: sum(1 for p in projects if p.name == name) for name in names}
            assert set(counts.values()) == {1}, f"projects per name after one create each: {counts}"
            for p in projects:
                assert sorted(t.name for t in await client.get_tags(p.id)) == ["a", "b"], p.name


async def test_regions_under_drops_and_errors(emu, tmp_path):
    """The per-image path (CreateImagesFromFiles with regions) under 5% drops after the work and 10%
    5xx: a retried request meets its own images (OKDuplicate); each image must end with its regions
    exactly once, never twice."""
    import json

    from tests.corpus import make_jpeg

    root = tmp_path / "boxes"
    labels: dict[str, list[dict]] = {}
    expected: dict[str, str] = {}
    for i in range(160):
        rel = f"img_{i:04d}.jpg"
        make_jpeg(root / rel, (32, 32), seed=90_000 + i)
        tags = ("fork", "knife") if i % 3 else ("fork",)
        labels[rel] = [
            {"tag": t, "left": 0.1 + 0.2 * k, "top": 0.1, "width": 0.2, "height": 0.3 + 0.01 * (i % 10)}
            for k, t in enumerate(tags)
        ]
        expected[rel] = ",".join(tags)
    label_file = tmp_path / "regions.json"
    label_file.write_text(json.dumps(labels), encoding="utf-8")
    from cvbulk.pipeline.project import create_project

    async with training_client(emu) as clean:  # created cleanly: see the test above for --create under drops
        await create_project(clean, "faults-regions", detection=True)
    emu.set_faults(Faults(error_rate=0.10, drop_rate=0.05, drop_after_work=1.0))
    try:
        async with training_client(emu) as client:
            result = await run_upload(client, UploadOptions(
                root=root, project="faults-regions", labels=str(label_file),
                state=tmp_path / "s.sqlite", report=tmp_path / "r.json", tier="unlimited",
                max_concurrency=8, batch_bytes=BATCH_BYTES))
            stats = client.stats.snapshot()
    finally:
        emu.set_faults(Faults())
    assert result.ok, result.report.get("failures")
    assert result.report["counts"] == {"uploaded": len(labels)}
    assert stats["transport_errors"] > 0 and stats["server_errors"] > 0  # the dice did roll
    sha = sha_of_files(root, labels)
    async with training_client(emu) as client:
        (project,) = [p for p in await client.get_projects() if p.name == "faults-regions"]
        tag_names = {t.id: t.name for t in await client.get_tags(project.id)}
        images = [im async for im in client.iter_images(project.id)]
        assert len(images) == len(labels) == await client.get_image_count(project.id)
        by_sha = {im.original_image_uri.rstrip("/").rsplit("/", 1)[-1]: im for im in images}
        for rel, boxes in labels.items():
            image = by_sha[sha[rel]]
            got = sorted(tag_names[r.tag_id] for r in (image.regions or ()))
            assert got == sorted(b["tag"] for b in boxes), (rel, got)
    measure("upload: regions (per-image requests), 10% 5xx + 5% dropped after the work",
            images_sent=len(labels), in_project=len(images), duplicates=0, lost=0,
            requests=stats["requests"], retries=stats["retries"], server_errors=stats["server_errors"],
            transport_errors=stats["transport_errors"], throttled=stats["throttled"])


@pytest.mark.timeout(90)
async def test_emulator_process_killed_and_restarted_mid_run(tmp_path):
    """The service crashes (SIGKILL, no clean shutdown) mid-upload and comes back on the same port with
    the same data: what it had answered OK before the crash is still there (its SQLite is durable
    across a process crash), and the rest arrives exactly once."""
    data = tmp_path / "emulator"
    with CrashingEmulator(data, "--latency", "0.02") as remote:
        # The restart's length depends on the machine's load: ride it out by time, not by attempts.
        row = await _upload(remote, tmp_path, "faults-crash", during=partial(remote.crash_and_restart, after_requests=15),
                            client_kw={"retry": outage_retry()})
    assert remote.restarted, "the upload finished before the crash"
    assert row["transport_errors"] > 0
    assert integrity(data / "emulator.sqlite3") == "ok"
    measure("upload: emulator process SIGKILLed and restarted mid-run", **row)
