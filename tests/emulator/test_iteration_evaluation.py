"""An iteration's performance is part of its training (stored before it goes Completed), answers any
threshold / overlapThreshold at once, is computed off the event loop for an iteration of an older
emulator, and a stop does not wait for that computation."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time

import anyio
import pytest
import requests

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from cvbulk.emulator import _evaluation as ev
from cvbulk.emulator import _trainer as tr
from cvbulk.emulator._cancel import WorkCancelled, checkpoint, run_cpu

from ._ops_helpers import Client, trained_trees

pytestmark = pytest.mark.timeout(90)


def _perf_url(trees) -> str:
    return f"/projects/{trees.pid}/iterations/{trees.iteration['id']}/performance"


def _forget_evaluation(data, iteration_id: str) -> None:
    """Make the iteration look trained by an older emulator: no stored evaluation or performance."""
    ev.evaluation_path(data / "models", iteration_id).unlink()
    db = sqlite3.connect(data / "emulator.sqlite3")
    try:
        with db:
            db.execute("UPDATE iterations SET performance=NULL WHERE id=?", (iteration_id,))
            db.execute("DELETE FROM image_performances WHERE iteration_id=?", (iteration_id,))
    finally:
        db.close()


def test_performance_is_computed_once_stored_and_read_at_any_threshold(tmp_path):
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path)) as emu:
        c = Client(emu)
        trees = trained_trees(c)
        # cross-validated on the first performance call, then stored
        default = c.json("GET", _perf_url(trees))
        evaluation = ev.read_evaluation(tmp_path / "models", trees.iteration["id"])
        assert evaluation is not None and len(evaluation["images"]) == 18  # 9 + 9: all folds scored
        assert default == c.json("GET", _perf_url(trees), params={"threshold": "0.5", "overlapThreshold": "0.3"})
        assert {t["name"] for t in default["perTagPerformance"]} == {"Hemlock", "Japanese Cherry"}
        low = c.json("GET", _perf_url(trees), params={"threshold": "0"})
        assert low["recall"] == 1.0 and low["recall"] >= default["recall"]
        high = c.json("GET", _perf_url(trees), params={"threshold": "1"})
        assert high["recall"] <= default["recall"]
        assert low["averagePrecision"] == high["averagePrecision"] == default["averagePrecision"]
        for bad in ({"threshold": "2"}, {"overlapThreshold": "x"}, {"overlapThreshold": "-0.1"}):
            assert c.call("GET", _perf_url(trees), 400, params=bad).json()["code"] == "BadRequestInvalid"
        images = c.json("GET", _perf_url(trees) + "/images")
        _forget_evaluation(tmp_path, trees.iteration["id"])  # files of a running emulator: read per request
        # an iteration of an older emulator: computed on first request (the same honest figures), then stored
        assert c.json("GET", _perf_url(trees), params={"threshold": "0"}) == low
        assert c.json("GET", _perf_url(trees)) == default
        assert ev.read_evaluation(tmp_path / "models", trees.iteration["id"]) == evaluation
        assert _ids(c.json("GET", _perf_url(trees) + "/images")) == _ids(images)


def _ids(performances: list[dict]) -> list[tuple]:
    return [(p["id"], tuple((x["tagId"], x["probability"]) for x in p["predictions"])) for p in performances]


def test_a_stop_does_not_wait_for_an_evaluation_a_request_started(tmp_path, monkeypatch):
    started, ended = threading.Event(), threading.Event()

    def endless(*args: object) -> dict:  # stands for the evaluation of a very large project
        started.set()
        try:
            while True:  # pure Python CPU work holding the GIL between checkpoints, as the trainer's
                checkpoint()
                sum(range(10_000))
        finally:
            ended.set()

    emu = EmulatorThread(EmulatorConfig(data_dir=tmp_path)).start()
    try:
        c = Client(emu)
        trees = trained_trees(c)
        c.json("GET", _perf_url(trees))  # evaluated once (as an iteration is), then forgotten
        _forget_evaluation(tmp_path, trees.iteration["id"])
        monkeypatch.setattr(ev, "compute_stored", endless)
        def ask() -> None:
            try:
                c.call("GET", _perf_url(trees), expect=None)
            except requests.ConnectionError:
                pass  # the stop closed the connection of the request left waiting

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        assert started.wait(30)
        # the emulator still answers while the evaluation runs (it is off the event loop)
        asked = time.monotonic()
        assert c.json("GET", f"/projects/{trees.pid}")["id"] == trees.pid
        assert time.monotonic() - asked < 5  # (a few ms on a quiet machine: the loop gets the GIL back)
    finally:
        begun = time.monotonic()
        emu.stop()
    assert time.monotonic() - begun < 10  # the request's own grace (2 s) and no wait for the work
    assert ended.wait(10)  # and the work itself stopped at its next checkpoint


def test_run_cpu_is_cancellable_and_its_thread_stops():
    ended = threading.Event()

    def spin() -> None:
        try:
            while True:
                checkpoint()
        except WorkCancelled:
            ended.set()
            raise

    async def main() -> None:
        limiter = anyio.CapacityLimiter(1)
        assert await run_cpu(sum, [1, 2, 3], limiter=limiter) == 6
        with pytest.raises(ZeroDivisionError):
            await run_cpu(lambda: 1 / 0, limiter=limiter)
        with anyio.move_on_after(0.2):
            await run_cpu(spin, limiter=limiter)
        assert limiter.borrowed_tokens == 0

    asyncio.run(main())
    assert ended.wait(10)
    checkpoint()  # outside run_cpu: a no-op


def _vectors(n: int, seed: int) -> tuple[list[list[float]], list[tr.Sample]]:
    rnd = random.Random(seed)
    features, samples = [], []
    for i in range(n):
        tag = "a" if i % 3 else "b"
        centre = 1.0 if tag == "a" else -1.0
        features.append([centre + rnd.gauss(0, 0.8) for _ in range(4)])
        samples.append(tr.Sample(b"", (tag,)))
    return features, samples


def test_cross_validation_bounds_are_deterministic_and_never_score_a_training_image():
    features, samples = _vectors(150, seed=1)
    full = tr.cross_validate("Multiclass", features, samples, seed=0)
    assert sorted(i for i, _, _ in full) == list(range(150))  # unbounded: k-fold, every sample once
    bounded = tr.cross_validate("Multiclass", features, samples, seed=0, min_scored=40, max_train=50,
                                max_scored=35)
    assert bounded == tr.cross_validate("Multiclass", features, samples, seed=0, min_scored=40, max_train=50,
                                        max_scored=35)
    folds = tr._folds("Multiclass", samples, 0)  # 5 folds of 30
    by_fold = {f: [i for i, g, _ in bounded if g == f] for f in (0, 1)}
    assert len(bounded) == 35 and sorted(by_fold[0]) == sorted(folds[0]) and len(by_fold[1]) == 5
    assert set(by_fold[1]) <= set(folds[1])  # each held out of the model that scored it
    two = tr.cross_validate("Multiclass", features, samples, seed=0, min_scored=31)
    assert {f for _, f, _ in two} == {0, 1}  # 30 per fold: a second fold to reach 31
    perf = tr.summarise("Multiclass", ["a", "b"], [(samples[i], found) for i, _, found in bounded])
    assert 0.8 < perf.precision <= 1.0 and 0.8 < perf.average_precision <= 1.0
