"""Scoring under the emulator's misbehaviour switches: every image scored, exactly one output row each.

A small classification model is trained and published once per module with the faults off; each test
then scores a generated tree of 240 tiny jpgs with ``run_predict`` (real PredictionClient and
TrainingClient) while the emulator misbehaves, and checks the output holds exactly one ``predicted``
row per image and the report counts 240 predictions.
"""

from __future__ import annotations

from functools import partial

import anyio
import pytest

from cvbulk.client import Timeouts
from cvbulk.emulator import EmulatorConfig, EmulatorThread, Faults, Latency
from cvbulk.pipeline.predict import PredictOptions, run_predict

from .conftest import (
    CrashingEmulator,
    integrity,
    measure,
    one_row_each,
    outage_retry,
    prediction_client,
    small_tree,
    train_and_publish,
    training_client,
)

pytestmark = pytest.mark.timeout(90)

PER_TAG = 120


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(emulator, project id) with an iteration published as "prod"."""
    tmp = tmp_path_factory.mktemp("predict-faults")
    with EmulatorThread(EmulatorConfig(data_dir=tmp / "emulator", seed=11)) as emu:
        project_id, _ = anyio.run(train_and_publish, emu, "prod", tmp)
        yield emu, project_id


async def _predict(emu, project_id, tmp_path, *, before=None, during=None, client_kw=None, output="out.csv"):
    root = tmp_path / "dump"
    tree = small_tree(root, PER_TAG, seed=500)
    out = tmp_path / output
    if before is not None:
        before()
    try:
        async with prediction_client(emu, **(client_kw or {})) as prediction, training_client(emu) as training:
            options = PredictOptions(root=root, project=project_id, published_name="prod", output=out,
                                     max_concurrency=16)
            async with anyio.create_task_group() as tg:
                if during is not None:
                    tg.start_soon(during, prediction)
                result = await run_predict(prediction, training, options)
                tg.cancel_scope.cancel()
            # The burst of 429s meets whichever calls come first: training's (project, tags) too.
            p_stats, t_stats = prediction.stats.snapshot(), training.stats.snapshot()
            stats = {k: p_stats[k] + t_stats[k] for k in ("requests", "retries", "throttled", "server_errors",
                                                           "transport_errors")}
    finally:
        emu.set_faults(Faults())
        emu.set_latency(Latency())
    assert result.ok, result.report.get("failures")
    assert result.report["counts"] == {"predicted": len(tree)}, result.report["counts"]
    rows = one_row_each(out, tree)
    assert {r["status"] for r in rows} == {"predicted"}
    assert all(r["top_tag"] in ("a", "b") for r in rows)
    assert integrity(out.with_name(out.name + ".state")) == "ok"
    return {
        "images_sent": len(tree),
        "rows": len(rows),
        "duplicates": len(rows) - len({r["path"] for r in rows}),
        "lost": len(tree) - len({r["path"] for r in rows}),
        "requests": stats["requests"],
        "retries": stats["retries"],
        "throttled": stats["throttled"],
        "server_errors": stats["server_errors"],
        "transport_errors": stats["transport_errors"],
    }


async def test_ten_percent_500_503(model, tmp_path):
    emu, pid = model
    row = await _predict(emu, pid, tmp_path, before=lambda: emu.set_faults(Faults(error_rate=0.10)))
    assert row["server_errors"] > 0
    measure("predict: 10% answered 500/503", **row)


async def test_five_percent_connections_dropped(model, tmp_path):
    emu, pid = model
    row = await _predict(emu, pid, tmp_path, before=lambda: emu.set_faults(Faults(drop_rate=0.05)),
                         output="out.jsonl")
    assert row["transport_errors"] > 0
    measure("predict: 5% connections dropped (JSONL)", **row)


async def test_burst_of_429(model, tmp_path):
    emu, pid = model
    row = await _predict(emu, pid, tmp_path, before=lambda: emu.set_faults(Faults(throttle_burst=6)))
    assert row["throttled"] == 6
    measure("predict: burst of 6 x 429 with Retry-After", **row)


async def test_latency_spike_over_the_client_timeout(model, tmp_path):
    emu, pid = model

    async def end_spike(client) -> None:
        with anyio.fail_after(60):
            while client.stats.transport_errors < 12:
                await anyio.sleep(0.01)  # watching the client's counters
        emu.set_latency(Latency())

    row = await _predict(
        emu, pid, tmp_path,
        before=lambda: emu.set_latency(Latency(per_request=0.6)),
        during=end_spike,
        client_kw={"timeouts": Timeouts(connect=1.0, read=0.25, total=0.5)},
    )
    assert row["transport_errors"] >= 12
    measure("predict: latency spike 0.6 s over a 0.25 s timeout", **row)


async def test_burst_of_429_without_retry_after(tmp_path):
    """Its own emulator, which leaves the Retry-After header out: the wait comes from the message."""
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emulator", retry_after=False, seed=12)) as emu:
        project_id, _ = await train_and_publish(emu, "prod", tmp_path)
        row = await _predict(emu, project_id, tmp_path, before=lambda: emu.set_faults(Faults(throttle_burst=6)))
    assert row["throttled"] == 6
    measure("predict: burst of 6 x 429 without Retry-After", **row)


@pytest.mark.timeout(90)
async def test_emulator_process_killed_and_restarted_mid_run(tmp_path):
    """``cvbulk emulator`` (its own process) is SIGKILLed after 60 requests and started again on the
    same port with the same data: the published model comes back from disk and scoring goes on.
    (A graceful stop of a busy emulator can hang: see test_emulator_load's stop test.)"""
    data = tmp_path / "emulator"
    with CrashingEmulator(data, "--latency", "0.01") as remote:
        project_id, _ = await train_and_publish(remote, "prod", tmp_path)
        # The restart's length depends on the machine's load: ride it out by time, not by attempts.
        row = await _predict(remote, project_id, tmp_path, during=partial(remote.crash_and_restart, after_requests=60),
                             client_kw={"retry": outage_retry()})
    assert remote.restarted, "the run finished before the crash"
    assert row["transport_errors"] > 0
    assert integrity(data / "emulator.sqlite3") == "ok"
    measure("predict: emulator process SIGKILLed and restarted mid-run", **row)
