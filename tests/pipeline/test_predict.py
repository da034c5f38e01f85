"""cvbulk.pipeline.predict: the engine with fakes, then the whole pipeline against the emulator."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path

import anyio
import pytest
from PIL import Image

from cvbulk.client._errors import (
    BadRequestError,
    NotFoundError,
    ServerError,
)
from cvbulk.client._models import BoundingBox, ImagePrediction, Prediction
from cvbulk.pipeline._predict_engine import (
    ERROR,
    FAILED,
    PREDICTED,
    REJECTED,
    Outcome,
    Prepared,
    ScoreStages,
    ServiceUnavailable,
    WorkItem,
)
from cvbulk.pipeline.engine import run_job
from cvbulk.pipeline.predict import PredictOptions, default_state_path, run_predict

pytestmark = pytest.mark.timeout(60)


async def run_engine(source, **kw):
    """The scoring stages as a job runs them: through engine.run_job (which unwraps a failing stage)."""
    stages = ScoreStages(**kw)
    return await run_job(None, None, None, partial(stages.run, source))


def _items(n: int) -> list[WorkItem]:
    return [WorkItem(f"d/img_{i:04d}.jpg", Path(f"/nowhere/img_{i:04d}.jpg"), 100 + i, i) for i in range(n)]


async def _aiter(items, pulled: list[str] | None = None) -> AsyncIterator[WorkItem | Outcome]:
    for item in items:
        if pulled is not None:
            pulled.append(item.key)
        yield item


def _prepare_ok(item: WorkItem) -> Prepared:
    return Prepared(item, item.key.encode(), "sha-" + item.key)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[Outcome]] = []

    def __call__(self, batch: Sequence[Outcome]) -> None:
        self.batches.append(list(batch))

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for b in self.batches for o in b]

    def by_key(self) -> dict[str, Outcome]:
        seen: dict[str, Outcome] = {}
        for o in self.outcomes:
            assert o.key not in seen, f"two outcomes for {o.key}"
            seen[o.key] = o
        return seen


async def test_engine_scores_every_item_once_and_bounds_concurrency():
    items = _items(200)
    in_flight = 0
    peak = 0

    async def score(data: bytes) -> dict:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0)  # yield so that others can start: this is what we measure
        await anyio.sleep(0)
        in_flight -= 1
        return {"for": data.decode()}

    rec = Recorder()
    stats = await run_engine(_aiter(items), prepare=_prepare_ok, score=score, record=rec, workers=8)
    got = rec.by_key()
    assert set(got) == {i.key for i in items}
    assert all(o.status == PREDICTED and o.prediction == {"for": o.key} for o in got.values())
    assert stats.predicted == 200 and stats.errors == 0
    assert stats.bytes_sent == sum(len(i.key) for i in items)
    assert 1 < peak <= 8


async def test_engine_records_in_batches_of_the_linger_and_the_end_cuts_it_short():
    """Outcomes wait up to ``record_linger`` to be recorded together; a full batch goes at once, and the run's
    end does not wait out the linger (a 30 s linger here: the run would time out if it did)."""

    async def score(data: bytes) -> str:
        await anyio.sleep(0)
        return "ok"

    async def check_and_score_source():
        for item in _items(10):
            yield item

    lingering, full = Recorder(), Recorder()
    with anyio.fail_after(10):
        await run_engine(_aiter(_items(10)), prepare=_prepare_ok, score=score, record=lingering, workers=4,
                         record_linger=30.0)
        await run_engine(_aiter(_items(10)), prepare=_prepare_ok, score=score, record=full, workers=4,
                         record_linger=30.0, record_batch=3)

        async def aprepare(item: WorkItem, cpu) -> Prepared:
            await anyio.sleep(0)
            return _prepare_ok(item)

        fused = Recorder()  # a source whose checks await: each worker checks, then scores
        await run_engine(check_and_score_source(), prepare=_prepare_ok, aprepare=aprepare, score=score,
                         record=fused, workers=4, prepare_tasks=2, record_linger=30.0)
    assert [len(b) for b in lingering.batches] == [10]
    assert [len(b) for b in full.batches] == [3, 3, 3, 1]
    assert set(fused.by_key()) == {i.key for i in _items(10)} and len(fused.batches) == 1


async def test_engine_checks_in_batches_when_the_source_can():
    """``aprepare_many``: what waits is checked together (up to ``prepare_batch``), each result scored or
    recorded once; a batch whose check fails outright is rejected item by item."""
    batches: list[int] = []

    async def aprepare_many(items, cpu):
        batches.append(len(items))
        await anyio.sleep(0)
        if any(i.key.endswith("_0013.jpg") for i in items):
            raise OSError("the storage account went away")
        return [Outcome(i.key, REJECTED, reason="not an image") if i.key.endswith("7.jpg") else _prepare_ok(i)
                for i in items]

    async def score(data: bytes) -> str:
        await anyio.sleep(0)
        return "ok"

    rec = Recorder()
    with anyio.fail_after(10):
        await run_engine(_aiter(_items(100)), prepare=_prepare_ok, aprepare_many=aprepare_many, score=score,
                         record=rec, workers=4, prepare_tasks=2, prepare_batch=8)
    got = rec.by_key()
    assert len(got) == 100 and max(batches) <= 8 and sum(batches) == 100 and len(batches) < 100
    failed = [o for o in got.values() if o.reason and "went away" in o.reason]
    assert failed and all(o.status == REJECTED for o in failed)
    assert {o.status for k, o in got.items() if k.endswith("7.jpg")} == {REJECTED}
    assert all(o.status == PREDICTED for o in got.values() if o.reason is None)


async def test_engine_outcomes_for_bad_input_and_service_refusals():
    items = _items(12)

    def prepare(item: WorkItem) -> Prepared | Outcome:
        n = int(item.key[-8:-4])
        if n == 0:
            return Outcome(item.key, REJECTED, item.size, item.mtime_ns, reason="not an image")
        if n == 1:
            raise FileNotFoundError(f"vanished: {item.path}")
        return _prepare_ok(item)

    async def score(data: bytes) -> str:
        n = int(data.decode()[-8:-4])
        if n == 2:
            raise BadRequestError("image format refused", status=400, code="BadRequestImageFormat")
        if n == 3:
            raise ServerError("boom", status=503)
        return "ok"

    upstream = [Outcome("broken/dir", REJECTED, reason="permission denied")]

    async def source():
        for o in upstream:
            yield o
        for i in items:
            yield i

    rec = Recorder()
    stats = await run_engine(source(), prepare=prepare, score=score, record=rec, workers=4)
    got = rec.by_key()
    assert len(got) == 13
    assert got["broken/dir"].status == REJECTED
    assert got["d/img_0000.jpg"].reason == "not an image"
    assert got["d/img_0001.jpg"].status == REJECTED and "vanished" in got["d/img_0001.jpg"].reason
    assert got["d/img_0002.jpg"].status == FAILED and "BadRequestImageFormat" in got["d/img_0002.jpg"].reason
    assert got["d/img_0003.jpg"].status == ERROR and not got["d/img_0003.jpg"].final
    assert stats.predicted == 8 and stats.rejected == 3 and stats.failed == 1 and stats.errors == 1


async def test_engine_stops_on_run_wide_error_but_keeps_what_was_scored():
    items = _items(50)
    calls = 0

    async def score(data: bytes) -> str:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise NotFoundError("published name not found", status=404, code="NotFoundIteration")
        return "ok"

    rec = Recorder()
    with pytest.raises(NotFoundError):  # the error itself, not a group: the CLI maps it to exit 3
        await run_engine(_aiter(items), prepare=_prepare_ok, score=score, record=rec, workers=1)
    assert [o.status for o in rec.outcomes] == [PREDICTED] * 5  # written before the error surfaced

    # Several scorers meeting the error at once still raise it once, as itself.
    calls = 0
    rec = Recorder()
    with pytest.raises(NotFoundError):
        await run_engine(_aiter(items), prepare=_prepare_ok, score=score, record=rec, workers=8)
    assert all(o.status == PREDICTED for o in rec.outcomes) and len(rec.outcomes) <= 5


async def test_engine_breaker_trips_when_the_service_is_down():
    async def score(data: bytes) -> str:
        raise ServerError("down", status=503)

    rec = Recorder()
    with pytest.raises(ServiceUnavailable):
        await run_engine(_aiter(_items(500)), prepare=_prepare_ok, score=score, record=rec, workers=2, breaker=10)
    assert len(rec.outcomes) < 500  # it stopped early instead of failing every image


async def test_engine_pulls_the_source_lazily():
    """A stalled service holds the scan back: the source is never read far ahead."""
    pulled: list[str] = []
    gate = anyio.Event()
    started = 0

    async def score(data: bytes) -> str:
        nonlocal started
        started += 1
        await gate.wait()
        return "ok"

    async def release_when_stalled() -> None:
        # Wait until the pipeline is saturated (every scorer busy, buffers full), then look.
        while started < 4:
            await anyio.sleep(0.01)
        for _ in range(50):
            await anyio.sleep(0)
        assert len(pulled) < 4 + 4 + 2 * 8 + 8  # scorers + score buffer + prepare buffers + slack
        gate.set()

    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(release_when_stalled)
        await run_engine(
            _aiter(_items(2_000), pulled), prepare=_prepare_ok, score=score, record=rec, workers=4,
            prepare_workers=2,
        )
    assert len(rec.outcomes) == 2_000


# -- run_predict with a fake prediction client (the real one is exercised against the emulator below)


PROJECT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
TAGS = ("Hemlock", "Japanese_Cherry", "=cmd")  # the last one a spreadsheet would run as a formula


def _jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_tree(root: Path, n: int, *, bad: int = 0) -> list[str]:
    """n small jpgs in two folders, plus ``bad`` files that are not images; returns the relpaths."""
    paths = []
    for i in range(n):
        rel = f"{'a' if i % 2 else 'b'}/img {i:03d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_jpeg(i))
        paths.append(rel)
    for i in range(bad):
        rel = f"bad/text_{i}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("not an image at all\n")
        paths.append(rel)
    return paths


class FakePrediction:
    """Stands in for PredictionClient: deterministic answers from the image bytes."""

    def __init__(self, *, fail_after: int | None = None, transient: set[int] | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after
        self.transient = transient or set()
        self.pacer = None
        self.stats = None

    def _answer(self, data, detect: bool) -> ImagePrediction:
        self.calls += 1
        if not isinstance(data, bytes):  # an ImageBody: read as the real client writes it
            data = data.path.read_bytes()[: data.size]
        if self.fail_after is not None and self.calls > self.fail_after:
            raise NotFoundError("published iteration not found", status=404, code="NotFoundIteration")
        if self.calls in self.transient:
            raise ServerError("service unavailable", status=503)
        h = hashlib.sha256(data).digest()
        weights = [h[i] + 1 for i in range(len(TAGS))]
        total = sum(weights)
        preds = []
        for i, tag in enumerate(TAGS):
            box = BoundingBox(0.1 * i, 0.2, 0.3, 0.4) if detect else None
            preds.append(Prediction(probability=weights[i] / total, tag_id=f"id-{i}", tag_name=tag, bounding_box=box))
        return ImagePrediction(id="p", project=PROJECT_ID, iteration="it", predictions=tuple(preds))

    async def classify_image(self, project_id, published_name, image, *, store=False, application=None):
        assert project_id == PROJECT_ID and published_name == "prod" and not store
        await anyio.sleep(0)
        return self._answer(image, False)

    async def detect_image(self, project_id, published_name, image, *, store=False, application=None):
        await anyio.sleep(0)
        return self._answer(image, True)


def _options(root: Path, out: Path, **kw) -> PredictOptions:
    return PredictOptions(root=root, project=PROJECT_ID, published_name="prod", output=out, **kw)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_run_predict_csv_columns_rows_and_bad_input(tmp_path):
    root = tmp_path / "tree"
    paths = make_tree(root, 9, bad=2)
    out = tmp_path / "out.csv"
    result = await run_predict(FakePrediction(), None, _options(root, out, report=tmp_path / "r.json"))

    assert not result.ok  # two files are not images
    rows = _csv_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(paths)
    with open(out, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    # Without training credentials the columns are the first answer's tags, sorted by name; the
    # formula-like tag name is escaped in the header.
    assert header[5:] == ["'=cmd", "Hemlock", "Japanese_Cherry"]
    for r in rows:
        if r["status"] == "predicted":
            probs = [float(r[c]) for c in header[5:]]
            assert abs(sum(probs) - 1) < 1e-4 and float(r["top_probability"]) == max(probs)
        else:
            assert r["status"] == "rejected" and r["path"].startswith("bad/") and r["reason"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"] == {"predicted": 9, "rejected": 2}
    assert {f["path"] for f in report["failures"]} == {"bad/text_0.jpg", "bad/text_1.jpg"}


async def test_run_predict_resumes_without_duplicates(tmp_path):
    root = tmp_path / "tree"
    paths = make_tree(root, 30)
    out = tmp_path / "out.csv"
    first = FakePrediction(fail_after=12)
    with pytest.raises(NotFoundError):
        await run_predict(first, None, _options(root, out, max_concurrency=4))
    done_first = {r["path"] for r in _csv_rows(out)}
    assert 0 < len(done_first) <= 12

    # A row written by a run killed before it journalled: the output says done, so it is not sent.
    with open(out, "a", newline="", encoding="utf-8") as f:
        extra = next(p for p in paths if p not in done_first)
        f.write(f"{extra},predicted,,Hemlock,0.9,0,0.9,0.1\r\n")

    second = FakePrediction()
    result = await run_predict(second, None, _options(root, out, max_concurrency=4))
    assert result.ok
    rows = [r["path"] for r in _csv_rows(out)]
    assert sorted(rows) == sorted(paths) and len(rows) == len(set(rows))
    assert second.calls == 30 - len(done_first) - 1
    assert result.report["extra"]["already_done"] == len(done_first) + 1
    assert "skipped" not in result.report["counts"]  # done by an earlier run is not "skipped"

    third = FakePrediction()
    again = await run_predict(third, None, _options(root, out))
    assert third.calls == 0 and again.ok
    assert len(_csv_rows(out)) == 30


async def test_run_predict_awkward_names_round_trip_through_resume(tmp_path):
    """Names a spreadsheet would run as a formula, unicode, commas and quotes: escaped in the CSV,
    and recognised again by the resume (nothing scored twice)."""
    root = tmp_path / "tree"
    names = ["=SUM(1,2).jpg", "-1.jpg", "+x.jpg", "@me.jpg", "ünï cödé.jpg", 'comma, "quote".jpg']
    root.mkdir()
    for i, name in enumerate(names):
        (root / name).write_bytes(_jpeg(i))
    out = tmp_path / "out.csv"
    assert (await run_predict(FakePrediction(), None, _options(root, out))).ok
    with open(out, newline="", encoding="utf-8") as f:
        cells = [r["path"] for r in csv.DictReader(f)]
    assert all(not c.startswith(("=", "+", "@")) for c in cells)  # escaped with a leading '
    again = FakePrediction()
    result = await run_predict(again, None, _options(root, out))
    assert again.calls == 0 and result.report["counts"] == {}
    assert result.report["extra"]["already_done"] == len(names)


async def test_run_predict_transient_errors_get_no_row_and_are_retried(tmp_path):
    root = tmp_path / "tree"
    paths = make_tree(root, 10)
    out = tmp_path / "out.csv"
    result = await run_predict(FakePrediction(transient={2, 5}), None, _options(root, out, max_concurrency=1))
    assert not result.ok
    assert len(_csv_rows(out)) == 8
    assert [f["status"] for f in result.report["failures"]] == ["error", "error"]

    retry = FakePrediction()
    result = await run_predict(retry, None, _options(root, out))
    assert retry.calls == 2 and result.ok and result.report["failures"] == []
    assert sorted(r["path"] for r in _csv_rows(out)) == sorted(paths)


async def test_run_predict_jsonl_top_and_threshold(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, 6)
    out = tmp_path / "out.jsonl"
    result = await run_predict(FakePrediction(), None, _options(root, out, top=2, threshold=0.2))
    assert result.ok
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    for obj in lines:
        probs = [p["probability"] for p in obj["predictions"]]
        assert len(probs) <= 2 and probs == sorted(probs, reverse=True) and all(p >= 0.2 for p in probs)
        assert obj["top_tag"] == obj["predictions"][0]["tagName"]


async def test_run_predict_detection_csv_one_row_per_box(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, 4)
    out = tmp_path / "boxes.csv"
    result = await run_predict(FakePrediction(), None, _options(root, out, detect=True, top=2))
    assert result.ok
    rows = _csv_rows(out)
    assert len(rows) == 8  # two best boxes per image
    assert all(float(r["width"]) == pytest.approx(0.3) for r in rows)
    assert default_state_path(out).exists()


async def test_run_predict_needs_an_id_without_training(tmp_path):
    from cvbulk.pipeline.errors import ConfigError as CLIError

    root = tmp_path / "tree"
    make_tree(root, 1)
    with pytest.raises(CLIError, match="not a project id"):
        await run_predict(
            FakePrediction(), None,
            PredictOptions(root=root, project="my project", published_name="prod", output=tmp_path / "o.csv"),
        )


# -- against the emulator: a model trained on Microsoft's samples, scored through the real client


SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
CLASSIFY_TEST = SAMPLES / "ImageClassification" / "Images" / "Test"
DETECT_TEST = SAMPLES / "ObjectDetection" / "Images" / "test"


async def _wait_trained(training, project_id: str, iteration) -> None:
    with anyio.fail_after(60):
        while iteration.status != "Completed":
            assert iteration.status in ("Training", "Queued", "Staging"), iteration.status
            await anyio.sleep(0.05)  # polling the service's status, as a user would
            iteration = await training.get_iteration(project_id, iteration.id)


async def _train_trees(emu) -> str:
    """Upload the classification samples with the client, train, publish as treeModel; the id."""
    from cvbulk.client import TrainingClient

    async with TrainingClient(emu.endpoint, emu.training_key) as training:
        trees = await training.create_project("predict-trees")
        for name in ("Hemlock", "Japanese_Cherry"):
            tag = await training.create_tag(trees.id, name)
            folder = SAMPLES / "ImageClassification" / "Images" / name
            images = [(f.name, f.read_bytes()) for f in sorted(folder.glob("*.jpg"))]
            summary = await training.create_images_from_data(trees.id, images, tag_ids=[tag.id])
            assert summary.is_batch_successful
        iteration = await training.train_project(trees.id)
        await _wait_trained(training, trees.id, iteration)
        await training.publish_iteration(trees.id, iteration.id, "treeModel", emu.prediction_resource_id)
    return trees.id


async def _train_cutlery(emu) -> str:
    """The fork/scissors samples with their regions (od_regions.json), published as detectModel."""
    from cvbulk.client import ImageFileCreateEntry, Region, TrainingClient

    async with TrainingClient(emu.endpoint, emu.training_key) as training:
        domain = next(
            d for d in await training.get_domains() if d.type == "ObjectDetection" and d.name == "General"
        )
        cutlery = await training.create_project("predict-cutlery", domain_id=domain.id)
        tags = {name: await training.create_tag(cutlery.id, name) for name in ("fork", "scissors")}
        entries = []
        for name, regions in json.loads((SAMPLES / "od_regions.json").read_text()).items():
            image = SAMPLES / "ObjectDetection" / "Images" / name.split("_")[0] / name
            boxes = [Region(tags[r["tag"]].id, r["left"], r["top"], r["width"], r["height"]) for r in regions]
            entries.append(ImageFileCreateEntry(name, image.read_bytes(), regions=boxes))
        for start in range(0, len(entries), 64):
            summary = await training.create_images_from_files(cutlery.id, entries[start : start + 64])
            assert summary.is_batch_successful
        iteration = await training.train_project(cutlery.id)
        await _wait_trained(training, cutlery.id, iteration)
        await training.publish_iteration(cutlery.id, iteration.id, "detectModel", emu.prediction_resource_id)
    return cutlery.id


@pytest.fixture(scope="module")
def emu_thread(tmp_path_factory):
    """One unthrottled emulator in its own thread for this module (main() and subprocesses use it too)."""
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    config = EmulatorConfig(tier="unlimited", data_dir=tmp_path_factory.mktemp("emulator"))
    with EmulatorThread(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def trees(emu_thread) -> str:
    return anyio.run(_train_trees, emu_thread)


@pytest.fixture(scope="module")
def cutlery(emu_thread) -> str:
    return anyio.run(_train_cutlery, emu_thread)


def _clients(emu):
    from cvbulk.client import Pacer, PredictionClient, TrainingClient

    prediction = PredictionClient(emu.endpoint, emu.prediction_key, pacer=Pacer.for_tier("unlimited", max_concurrency=16))
    return prediction, TrainingClient(emu.endpoint, emu.training_key)


async def test_emulator_sample_test_image_is_hemlock_in_the_csv(emu_thread, trees, tmp_path):
    emu = emu_thread
    out = tmp_path / "trees.csv"
    prediction, training = _clients(emu)
    async with prediction, training:
        options = PredictOptions(
            root=CLASSIFY_TEST, project="predict-trees", published_name="treeModel", output=out
        )
        result = await run_predict(prediction, training, options)
    assert result.ok and result.report["counts"] == {"predicted": 1}

    with open(out, newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))  # the standard csv module reads it as is
    assert records[0] == ["path", "status", "reason", "top_tag", "top_probability", "Hemlock", "Japanese_Cherry"]
    with open(out, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))  # a pandas-like reader: named columns, plain numbers
    assert row["path"] == "test_image.jpg" and row["status"] == "predicted"
    assert row["top_tag"] == "Hemlock"
    hemlock, cherry = float(row["Hemlock"]), float(row["Japanese_Cherry"])
    assert hemlock > cherry and float(row["top_probability"]) == hemlock
    assert result.report["extra"]["project"] == {"id": trees, "name": "predict-trees"}


async def test_emulator_detection_test_image_gives_fork_boxes(emu_thread, cutlery, tmp_path):
    emu = emu_thread
    out = tmp_path / "boxes.csv"
    prediction, _ = _clients(emu)
    async with prediction:  # by id, without training credentials
        options = PredictOptions(
            root=DETECT_TEST, project=cutlery, published_name="detectModel", output=out,
            detect=True, top=5,
        )
        result = await run_predict(prediction, None, options)
    assert result.ok
    rows = _csv_rows(out)
    assert 1 <= len(rows) <= 5 and {r["path"] for r in rows} == {"test_image.jpg"}
    assert rows[0]["tag"] == "fork"  # the best box
    for r in rows:
        left, top, width, height = (float(r[k]) for k in ("left", "top", "width", "height"))
        assert 0 <= left <= 1 and 0 <= top <= 1 and 0 < width <= 1 and 0 < height <= 1
        assert 0 < float(r["probability"]) <= 1


def _data_rows(path: Path) -> list[str]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [r["path"] for r in csv.DictReader(f)]


def test_emulator_kill_9_and_resume_gives_one_row_per_image(emu_thread, trees, tmp_path):
    """A `cvbulk predict` process killed with SIGKILL mid-run, then run again: every image once."""
    from tests.reliability.conftest import kill_when

    emu = emu_thread
    root = tmp_path / "dump"
    paths = make_tree(root, 90)
    out = tmp_path / "scores.csv"
    env = dict(os.environ)
    env.update(
        VISION_PREDICTION_ENDPOINT=emu.endpoint,
        VISION_PREDICTION_KEY=emu.prediction_key,
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    for name in ("VISION_TRAINING_ENDPOINT", "VISION_TRAINING_KEY"):
        env.pop(name, None)
    base = [
        sys.executable, "-m", "cvbulk", "predict", str(root), "--project", trees,
        "--published-name", "treeModel", "--output", str(out),
    ]
    # Slow enough (20/s) that the kill lands mid-run.
    proc = subprocess.Popen(
        base + ["--tps", "20", "--max-concurrency", "4"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    kill_when(proc, lambda: len(_data_rows(out)) >= 20, timeout=30, what="20 rows written")
    from cvbulk.pipeline.output import existing_keys

    first = existing_keys(out)  # what survived the kill (a torn last line is cut off)
    assert 20 <= len(first) < 90

    resumed = subprocess.run(
        base + ["--tier", "unlimited", "--json"], env=env, capture_output=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    report = json.loads(resumed.stdout)
    rows = _data_rows(out)
    assert len(rows) == 90 and sorted(rows) == sorted(paths)  # row count == image count, none twice
    assert report["extra"]["already_done"] == len(first)
    assert report["counts"]["predicted"] == 90 - report["extra"]["already_done"]
    assert emu.prediction_key not in out.read_text() + resumed.stdout.decode() + resumed.stderr.decode()


async def test_emulator_store_jsonl_and_run_wide_errors(emu_thread, trees, cutlery, tmp_path):
    from cvbulk.pipeline.errors import ConfigError as CLIError

    emu = emu_thread
    prediction, training = _clients(emu)
    async with prediction, training:
        out = tmp_path / "trees.jsonl"
        options = PredictOptions(
            root=CLASSIFY_TEST, project=trees, published_name="treeModel", output=out, store=True, top=1
        )
        result = await run_predict(prediction, training, options)
        (line,) = [json.loads(x) for x in out.read_text().splitlines()]
        assert line["top_tag"] == "Hemlock" and [p["tagName"] for p in line["predictions"]] == ["Hemlock"]
        assert result.ok

        # A detection project scored without --detect is caught before any image is sent.
        with pytest.raises(CLIError, match="add detect"):
            await run_predict(
                prediction, training,
                PredictOptions(root=DETECT_TEST, project="predict-cutlery", published_name="detectModel",
                               output=tmp_path / "x.csv"),
            )
        # An unknown published name stops the run (exit 3 in the CLI) instead of failing every image.
        with pytest.raises(NotFoundError):
            await run_predict(
                prediction, None,
                PredictOptions(root=CLASSIFY_TEST, project=trees, published_name="nope", output=tmp_path / "y.csv"),
            )


async def test_emulator_429s_and_5xx_lose_nothing(emu_thread, trees, tmp_path):
    """An unpaced client against a throttled, flaky service: retried, every image scored once."""
    from cvbulk.emulator import Faults

    emu = emu_thread
    root = tmp_path / "dump"
    paths = make_tree(root, 30)
    out = tmp_path / "scores.csv"
    # A burst of 6 against 16 requests sent at once: a 429 however slow the machine (at 40/s, a loaded
    # machine never went fast enough to meet one).
    emu.set_rates(prediction_tps=6)
    emu.set_faults(Faults(error_rate=0.1))
    try:
        prediction, _ = _clients(emu)  # the client does not know the limit: it learns from the 429s
        async with prediction:
            result = await run_predict(
                prediction, None, PredictOptions(root=root, project=trees, published_name="treeModel", output=out)
            )
    finally:
        emu.set_faults(Faults())
        emu.set_rates(tier="unlimited")
    assert result.ok, result.report["failures"]
    rows = _data_rows(out)
    assert sorted(rows) == sorted(paths)
    assert result.report["throttled_429"] > 0 and result.report["retries"] >= result.report["throttled_429"]


class _Unreachable(FakePrediction):
    async def classify_image(self, project_id, published_name, image, *, store=False, application=None):
        from cvbulk.client._errors import EndpointUnreachableError

        self.calls += 1
        raise EndpointUnreachableError("cannot reach 127.0.0.1:9 (connection refused)")


async def test_run_predict_an_unreachable_endpoint_stops_the_run_once(tmp_path):
    from cvbulk.client._errors import EndpointUnreachableError

    root = tmp_path / "tree"
    make_tree(root, 40)
    fake = _Unreachable()
    with pytest.raises(EndpointUnreachableError):  # one line for the CLI, not 40 per-image errors
        await run_predict(fake, None, _options(root, tmp_path / "o.csv", max_concurrency=4))
    assert fake.calls <= 4


async def test_run_predict_refuses_a_foreign_output_before_sending(tmp_path):
    from cvbulk.pipeline.errors import ConfigError

    root = tmp_path / "tree"
    make_tree(root, 3)
    out = tmp_path / "mine.csv"
    out.write_text("name,amount\nrent,1200\n")
    fake = FakePrediction()
    with pytest.raises(ConfigError, match="left untouched"):
        await run_predict(fake, None, _options(root, out))
    assert fake.calls == 0 and out.read_text() == "name,amount\nrent,1200\n"


async def test_run_predict_files_left_out_by_rule_are_skipped_not_failed(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, 3)
    (root / "notes.txt").write_text("hello")
    (root / ".hidden.jpg").write_bytes(_jpeg(1))
    result = await run_predict(FakePrediction(), None, _options(root, tmp_path / "o.csv"))
    assert result.ok, result.report["failures"]
    assert result.report["counts"] == {"predicted": 3, "skipped": 2}
    rows = {r["path"]: r["status"] for r in _csv_rows(tmp_path / "o.csv")}
    assert rows["notes.txt"] == "skipped" and rows[".hidden.jpg"] == "skipped"
