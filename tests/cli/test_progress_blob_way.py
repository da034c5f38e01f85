"""The last line of a run from a container says which way its images went (the report's
``extra.source.sent``), so "0.00 MB/s" reads as "no image byte through cvbulk", not as a stall."""

from __future__ import annotations

from cvbulk.cli._progress import final_line


def _report(sent: dict | None) -> dict:
    report = {"counts": {"uploaded": 8}, "elapsed_s": 2.0, "throughput": {"images_per_s": 4.0, "mb_per_s": 0.0},
              "extra": {}}
    if sent is not None:
        report["extra"]["source"] = {"sent": sent}
    return report


def test_all_by_url():
    line = final_line("upload", _report({"by_url": 5000, "as_bytes": 0, "fixed_as_bytes": 0,
                                         "url_fallback_to_bytes": 0}))
    assert line.endswith("0.00 MB/s  (sent 5,000 by URL)"), line


def test_mixed_ways_in_a_fixed_order():
    line = final_line("predict", _report({"by_url": 3, "as_bytes": 1, "fixed_as_bytes": 5,
                                          "url_fallback_to_bytes": 2}))
    assert line.endswith("(sent 3 by URL, 1 as bytes, 5 fixed as bytes, 2 as bytes after the service could not "
                         "fetch them)"), line


def test_a_folder_run_and_a_run_that_sent_nothing_say_nothing_more():
    assert final_line("upload", _report(None)).endswith("0.00 MB/s")
    assert final_line("upload", _report({"by_url": 0, "as_bytes": 0})).endswith("0.00 MB/s")
