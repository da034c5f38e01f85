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
    assert p.counts == {"ok": 3, "failed": 1, "skipped": 2, "done": 6, "total": 10, "bytes": 3_000}
    p.set_total(20)
    assert p.counts["total"] == 20


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
    assert "upload:" in line and "100/1000 (10.0%)" in line and "failed 2" in line
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


async def test_async_context_draws_and_ends_with_final_line() -> None:
    out = io.StringIO()
    async with Progress(total=3, label="upload", stream=out, tty=False, interval=0) as p:
        p.advance(ok=2, failed=1)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()  # let the drawing task run (interval 0)
        assert out.getvalue().count("\n") >= 1
    text = out.getvalue()
    assert text.splitlines()[-1].startswith("upload done: 3/3 (100.0%)  ok 2  failed 1")


async def test_async_context_propagates_body_error() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"):
        async with Progress(stream=out, tty=True) as p:
            p.draw()
            raise RuntimeError("boom")
    # Nothing was done: the bar is cleared (the cursor back at column 0) rather than left as
    # "0 done" above the error line.
    text = out.getvalue()
    assert text.endswith("\r") and text.rstrip("\r").split("\r")[-1].strip() == ""
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"):
        async with Progress(stream=out, tty=True) as p:
            p.advance(ok=1)
            raise RuntimeError("boom")
    assert out.getvalue().endswith("\n")  # work was done: the final line stays, closed with a newline


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
