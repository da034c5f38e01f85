from __future__ import annotations

import io

import anyio
import anyio.lowlevel
import pytest

from cvbulk.cli._progress import Progress, format_duration, summary_table
from cvbulk.pipeline.report import build_report


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_and_totals() -> None:
    p = Progress(total=None, stream=io.StringIO(), tty=False)
    p.advance(ok=3, nbytes=3_000)
    p.advance(failed=1)
    p.advance(skipped=2)
    p.add_total(10)
    assert p.counts["total"] is None  # a lazy scan's total is unknown until the scan ends
    p.scan_done()
    assert p.counts == {"ok": 3, "failed": 1, "skipped": 2, "done": 6, "total": 10, "bytes": 3_000}
    p.set_total(20)
    assert p.counts["total"] == 30  # given up front, plus what a scan found on top


def test_plain_lines_every_interval() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(total=1000, label="upload", stream=out, tty=False, interval=10.0, clock=clock)
    p.set_concurrency(8)
    assert not p.tick()  # nothing at the start of a plain log
    clock.now += 5
    p.advance(ok=50, nbytes=5_000_000)
    assert not p.tick()
    clock.now += 5  # 10 s: 100 images, 10 MB
    p.advance(ok=48, failed=2, nbytes=5_000_000)
    assert p.tick()
    line = out.getvalue()
    assert line.count("\n") == 1 and "\r" not in line
    assert "upload:" in line and "100/1,000 (10.0%)" in line and "failed 2" in line
    assert "10.0 images/s" in line and "1.00 MB/s" in line and "concurrency 8" in line
    assert "ETA 1:30" in line  # 900 left at 10/s
    assert not p.tick()


def test_tty_bar_redrawn_in_place() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(total=200, label="predict", stream=out, tty=True, clock=clock, width=200)
    p.set_concurrency(lambda: 12)
    assert p.interval == pytest.approx(0.1)
    p.advance(ok=100, nbytes=2_000_000)
    clock.now += 10
    assert p.tick()
    first = out.getvalue()
    assert first.startswith("\r") and "\n" not in first
    assert " 50% |##########..........|" in first and "100/200" in first
    assert "10.0 img/s" in first and "0.20 MB/s" in first and "conc 12" in first and "ETA 0:10" in first
    clock.now += 0.05
    assert not p.tick()  # at most ~10 draws a second
    clock.now += 0.05
    assert p.tick()
    p.draw(final=True)
    assert out.getvalue().endswith("\n")


def test_tty_line_cut_to_terminal_width() -> None:
    out = io.StringIO()
    p = Progress(total=10, stream=out, tty=True, clock=Clock(), width=30)
    p.draw()
    assert len(out.getvalue()) <= 30


def test_unknown_total_and_broken_stream() -> None:
    clock = Clock()
    p = Progress(stream=io.StringIO(), tty=False, clock=clock)
    p.advance(ok=1)
    assert "1/?" in p.render() and "ETA" not in p.render()
    closed = io.StringIO()
    closed.close()
    Progress(stream=closed, tty=True).draw()  # does not raise


def test_skipped_files_do_not_inflate_rate() -> None:
    clock = Clock()
    p = Progress(total=1000, stream=io.StringIO(), tty=False, clock=clock)
    p.advance(skipped=900)
    clock.now += 10
    p.advance(ok=10)
    images_s, _ = p.rates(overall=True)
    assert images_s == pytest.approx(1.0)
    assert p.eta() == pytest.approx(90.0)


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(75) == "1:15"
    assert format_duration(3 * 3600 + 61) == "3:01:01"
    assert format_duration(None) == "--:--" and format_duration(float("inf")) == "--:--"


async def test_async_context_draws_and_leaves_the_end_to_the_report() -> None:
    out = io.StringIO()
    async with Progress(total=3, label="upload", stream=out, tty=False, interval=0) as p:
        p.advance(ok=2, failed=1)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()  # let the drawing task run (interval 0)
        assert out.getvalue().count("\n") >= 1
    # No "done" line of its own: the CLI prints final_line + summary_table from the job's report.
    assert "done" not in out.getvalue().splitlines()[-1]


async def test_async_context_propagates_body_error() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"):
        async with Progress(stream=out, tty=True) as p:
            p.draw()
            raise RuntimeError("boom")
    # The bar is cleared (the cursor back at column 0) rather than left above the error line.
    text = out.getvalue()
    assert text.endswith("\r") and text.rstrip("\r").split("\r")[-1].strip() == ""


async def test_interrupted_run_says_where_and_how_to_resume() -> None:
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        async with Progress(total=1000, label="upload", stream=out, tty=True, width=200) as p:
            p.advance(ok=89)
            p.draw()
            raise KeyboardInterrupt
    last = out.getvalue().split("\r")[-1]
    assert last == "upload interrupted at 89/1,000: run the same command again to resume\n"
    assert "done" not in out.getvalue()  # never "done" before "interrupted"
    from cvbulk.cli._progress import interrupt_explained

    assert interrupt_explained()


async def test_cancelled_run_is_interrupted_too() -> None:
    out = io.StringIO()
    with anyio.CancelScope() as scope:
        async with Progress(label="predict", stream=out, tty=False) as p:
            p.add_total(5)
            p.advance(ok=2)
            scope.cancel()
            await anyio.sleep(1)
    assert out.getvalue() == "predict interrupted at 2 done: run the same command again to resume\n"


def test_count_first_then_every_line_states_the_final_total() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(label="predict", stream=out, tty=False, interval=10.0, clock=clock)
    p.started(None)
    p.count_with(lambda: 1000)  # no task group: counted on the spot
    assert p.total == 1000 and not p.holding
    assert not p.tick()  # a plain log starts quiet
    p.add_total(256)  # the scan's first chunk: the count stands
    p.advance(ok=100)
    clock.now += 10
    assert p.tick()
    assert "100/1,000 (10.0%)" in out.getvalue() and "ETA" in out.getvalue()
    p.add_total(744)
    p.scan_done()
    assert p.total == 1000


def test_count_gave_up_total_unknown_until_scan_ends() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(label="upload", stream=out, tty=False, interval=10.0, clock=clock)
    p.started(None)
    p.count_with(lambda: None)  # too large to count in the budget
    assert not p.tick()
    p.add_total(512)
    p.advance(ok=89)
    clock.now += 10
    assert p.tick()
    line = out.getvalue()
    assert "89/?" in line and "%" not in line and "ETA" not in line
    p.add_total(100)
    p.scan_done()
    clock.now += 10
    assert p.tick()
    assert "89/612 (14.5%)" in out.getvalue().splitlines()[-1]


def test_scan_disagreeing_with_the_count_wins_at_the_end() -> None:
    p = Progress(stream=io.StringIO(), tty=False)
    p.count_with(lambda: 30)  # e.g. --exclude'd files are in the count
    p.add_total(20)
    assert p.total == 30
    p.scan_done()
    assert p.total == 20


def test_no_line_while_counting_in_a_log() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(label="upload", stream=out, tty=False, interval=10.0, clock=clock)
    p.started(None)
    p._counting = True  # a count still running in its worker thread
    p.add_total(3)
    clock.now += 20
    assert not p.tick() and out.getvalue() == ""
    tty_out = io.StringIO()
    t = Progress(label="upload", stream=tty_out, tty=True, clock=clock, width=100)
    assert not t.tick()  # nothing before the job has started (only its phases)
    t.started(None)
    t._counting = True
    assert t.tick()
    assert "counting files" in tty_out.getvalue() and "/" not in tty_out.getvalue()


async def test_count_runs_in_a_worker_thread() -> None:
    import threading

    seen: list[str] = []

    def count() -> int:
        seen.append(threading.current_thread().name)
        return 7

    async with Progress(stream=io.StringIO(), tty=False) as p:
        p.count_with(count)
        with anyio.fail_after(5):
            while p.holding:
                await anyio.sleep(0.01)
        assert p.total == 7
    assert seen and seen[0] != threading.main_thread().name


def test_phases_are_lines_of_their_own() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(label="upload", stream=out, tty=False, clock=clock)
    p.phase("creating 40 tags (F0: 2 calls/s, about 20 s)")
    assert out.getvalue() == "upload: creating 40 tags (F0: 2 calls/s, about 20 s)\n"
    # A storm of retries is not a storm of lines: one a second, the rest counted.
    for n in range(5):
        p.phase(f"throttled (HTTP 429) on CreateImagesFromData: trying again in 1.0 s (attempt {n + 2})")
    assert out.getvalue().count("\n") == 2  # the first retry at once, the other four held back
    clock.now += 1.0
    p.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[2].endswith("(attempt 6) (and 3 more like it)")
    # Control characters in a phase (a tag name) are escaped.
    clock.now += 1.0
    p.phase("creating tag 'a\x1b[2Jb'")
    assert "\x1b" not in out.getvalue() and "\\x1b" in out.getvalue()


def test_phase_on_a_terminal_goes_above_the_bar() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress(total=10, label="upload", stream=out, tty=True, clock=clock, width=100)
    p.tick()
    p.phase("creating project 'birds'")
    text = out.getvalue()
    assert "\rupload: creating project 'birds'" in text and text.count("\n") == 1
    assert text.rstrip().endswith("ETA --:--")  # the bar is drawn again under it


def test_retry_lines_reach_the_sink_and_the_hook_already_set() -> None:
    from cvbulk.client import RetryEvent
    from cvbulk.pipeline.engine import retry_notices

    said: list[str] = []
    heard: list[object] = []

    class Sink:
        def phase(self, text: str) -> None:
            said.append(text)

    class Client:
        on_retry = heard.append

    client = Client()
    with retry_notices(Sink(), client):  # type: ignore[arg-type]
        client.on_retry(RetryEvent("GetTags", 1, 0.2, "connection", None))
    assert said == ["connection trouble on GetTags: trying again in 0.2 s (attempt 2)"] and len(heard) == 1
    assert client.on_retry == heard.append


def test_final_line_and_table_show_the_same_figures() -> None:
    from cvbulk.cli._progress import final_line

    report = build_report(
        job="upload",
        started=0.0,
        finished=8.0,
        counts={"uploaded": 17, "failed": 1},
        failures=[],
        client_stats={"bytes_sent": 16_080_000},
        extra={"unchanged": 2},
    )
    line = final_line("upload", report)
    assert line == "upload done: 20 files in 8.0 s (uploaded 17, already done 2, failed 1)  2.2 images/s  2.01 MB/s"
    table = summary_table(report).splitlines()
    assert ["already", "done", "2"] in [r.split() for r in table]
    assert ["total", "20"] in [r.split() for r in table]
    assert ["elapsed", "8.0", "s"] in [r.split() for r in table]
    assert ["images/s", "2.2"] in [r.split() for r in table] and ["MB/s", "2.01"] in [r.split() for r in table]


def test_summary_table_from_report() -> None:
    report = build_report(
        job="upload",
        started=0.0,
        finished=4.0,
        counts={"uploaded": 38, "duplicate": 2, "rejected": 1},
        failures=[],
        client_stats={"retries": 7, "throttled": 3, "bytes_sent": 8_000_000},
    )
    table = summary_table(report)
    lines = table.splitlines()
    assert lines[0].split() == ["status", "files"]
    assert lines[1].split() == ["uploaded", "38"]
    assert ["total", "41"] in [line.split() for line in lines]
    assert any(line.split() == ["images/s", "10.2"] for line in lines)
    assert any(line.split() == ["MB/s", "2.00"] for line in lines)
    assert any(line.split() == ["retries", "7"] for line in lines)
    assert any(line.split() == ["429s", "3"] for line in lines)
    assert any(line.split() == ["elapsed", "4.0", "s"] for line in lines)
    # All rows line up.
    assert len({len(line) for line in lines if line}) == 1


def test_summary_table_flat_dict() -> None:
    table = summary_table({"counts": {}, "elapsed": 1.5, "images_per_s": None})
    assert "total" in table and "1.5 s" in table and "-" in table


async def test_predict_past_one_scan_chunk_every_plain_line_states_the_final_total(tmp_path) -> None:
    """predict on 300 images (more than one 256-item scan chunk): every progress line in a log says
    "/300", from the first to the last; none shows a total that grows while the scan goes."""
    import tests.pipeline.test_predict as tp
    from cvbulk.pipeline.predict import run_predict

    root = tmp_path / "images"
    tp.make_tree(root, 300)

    class Slow(tp.FakePrediction):
        async def classify_image(self, *args, **kw):
            await anyio.sleep(0.004)  # long enough for the display to draw many lines
            return await super().classify_image(*args, **kw)

    out = io.StringIO()
    async with Progress(label="predict", stream=out, tty=False, interval=0.02) as progress:
        result = await run_predict(
            Slow(), None, tp._options(root, tmp_path / "out.csv", max_concurrency=4), progress=progress
        )
    assert result.ok and result.report["counts"] == {"predicted": 300}
    lines = out.getvalue().splitlines()
    assert len(lines) >= 5, lines
    for line in lines:
        assert line.startswith("predict: ") and "/300 (" in line, line
    assert all("ETA" in line for line in lines)


async def test_project_and_tag_creation_are_phases() -> None:
    from types import SimpleNamespace

    from cvbulk.client import Pacer
    from cvbulk.pipeline.project import creating_tags_text, ensure_tags, find_or_create_project

    class Client:
        pacer = Pacer.for_tier("F0")

        def __init__(self) -> None:
            self.tags: list[SimpleNamespace] = []

        async def get_projects(self):
            return []

        async def create_project(self, name, **kw):
            return SimpleNamespace(id="p1", name=name)

        async def get_tags(self, project_id):
            return list(self.tags)

        async def create_tag(self, project_id, name):
            tag = SimpleNamespace(id=f"id-{name}", name=name)
            self.tags.append(tag)
            return tag

    said: list[str] = []
    sink = SimpleNamespace(phase=said.append)
    client = Client()
    client.pacer = Pacer(training_tps=1000.0)  # fast for the test; the words come from creating_tags_text
    _project, created = await find_or_create_project(client, "birds", create=True, progress=sink)  # type: ignore[arg-type]
    assert created and said == ["creating classification project 'birds'"]
    await ensure_tags(client, "p1", ["robin", "wren"], progress=sink, tier="S0")  # type: ignore[arg-type]
    assert said[-1] == "creating 2 tags (S0: 1000 calls/s)"
    await ensure_tags(client, "p1", ["robin", "wren"], progress=sink)  # type: ignore[arg-type]
    assert len(said) == 2  # nothing to create: nothing said
    f0 = SimpleNamespace(pacer=Pacer.for_tier("F0"))
    assert creating_tags_text(f0, 40, "F0") == "creating 40 tags (F0: 2 calls/s, about 20 s)"
    assert creating_tags_text(f0, 400, "F0") == "creating 400 tags (F0: 2 calls/s, about 3 min)"
    assert creating_tags_text(SimpleNamespace(), 1) == "creating 1 tag"


def test_local_folder_counts_what_its_scan_yields_or_gives_up(tmp_path) -> None:
    from cvbulk.pipeline.engine import count_first, scan_finished
    from cvbulk.pipeline.sources import LocalFolder

    (tmp_path / "a").mkdir()
    for i in range(5):
        (tmp_path / "a" / f"{i}.jpg").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("not an image")  # a candidate too: it ends as "skipped"
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    folder = LocalFolder(tmp_path)
    assert folder.count_within(5.0) == 7
    assert folder.count_within(5.0, include_hidden=True) == 7  # taken, no longer reported as skipped
    assert folder.count_within(-1.0) is None  # past its budget: the total stays unknown
    p = Progress(stream=io.StringIO(), tty=False)
    p.started(None)
    count_first(p, folder)
    assert p.total == 7
    count_first(p, object())  # a source that cannot count: nothing happens
    scan_finished(p)
    assert p.total == 0  # the scan reported nothing with add_total: its word is final
    count_first(None, folder)  # no sink, no count
    scan_finished(None)
