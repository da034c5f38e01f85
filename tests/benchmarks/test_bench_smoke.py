"""The benchmark harness runs end to end on tiny inputs (no speed is asserted here: that is the suite's job)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from benchmarks import _data
from benchmarks._clients import cvbulk_upload, rate_between, sdk_upload
from benchmarks._emulator import EmulatorProcess, LatencyModel
from benchmarks._report import write_results
from benchmarks.__main__ import main as bench_main

pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVBULK_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_trees_are_seeded_cached_and_varied(cache, monkeypatch):
    tree = _data.make_tree("photos", 120, seed=7, workers=1)
    files = sorted(p for p in tree.root.rglob("*") if p.is_file())
    assert len(files) == tree.count == 120
    assert {p.parent.name for p in files} == set(_data.TAGS)
    assert sum(tree.formats.values()) == 120 and tree.formats.get("JPEG", 0) > 90
    assert len({p.read_bytes() for p in files}) == 120, "every file has its own bytes"
    with Image.open(files[0]) as img:
        img.load()
    again = _data.make_tree("photos", 120, seed=7)
    assert again.generated_s == 0.0 and again.root == tree.root  # from the cache
    other = cache / "other"
    other.mkdir()
    # the same seed gives the same bytes wherever it is made
    monkeypatch.setenv("CVBULK_BENCH_CACHE", str(other))
    twin = _data.make_tree("photos", 120, seed=7, workers=1)
    assert [p.read_bytes() for p in sorted(twin.root.rglob("*.jpg"))][:5] == \
        [p.read_bytes() for p in sorted(tree.root.rglob("*.jpg"))][:5]


def test_sustained_rate_leaves_out_start_and_tail():
    points = [(0.0, 0), (1.0, 0), (2.0, 10), (3.0, 20), (4.0, 90), (5.0, 100)]
    assert rate_between(points, 100) == pytest.approx((90 - 10) / (4.0 - 2.0))
    assert rate_between([], 100) is None


def test_clients_against_an_emulator_process(cache, tmp_path):
    tree = _data.make_tree("tiny", 80, seed=1, workers=1)
    with EmulatorProcess(tier="S0", latency=LatencyModel(0.01, 0.0, 0.0), workdir=tmp_path / "emu") as emu:
        ours = cvbulk_upload(emu, tree, tmp_path / "cvbulk")
        sdk = sdk_upload(emu, tree, tmp_path / "sdk", threads=2, retry_429=True)
    assert ours["images"] == 80 and ours["failed"] == 0 and ours["cpu_s"] > 0 and ours["maxrss_mb"] > 10
    assert sdk["images"] == 80 and sdk["lost"] == 0
    assert ours["series"] and ours["series"][-1][1] == 80


def test_report_writes_json_markdown_and_png(tmp_path):
    row = {"client": "cvbulk", "median": {"sustained_ips": 600.0, "e2e_ips": 500.0, "wall_s": 10.0},
           "runs": [], "series": [(0.0, 0), (0.5, 100), (1.0, 400), (1.5, 700)], "ratio_to_ceiling": 0.94,
           "ratio_to_best_sdk": 3.0, "kind": "cvbulk"}
    scenario = {
        "title": "1. Upload", "params": {"files": 700, "tree": {"total_mb": 1.0, "size_mb": {"median": 0.3},
                                                                  "needs_fix": 0},
                                          "latency_text": "none"},
        "ceiling": {"images_per_s": 640, "why": "10 x 64", "full_batch_latency_s": 1.0, "in_flight_needed": 10,
                    "best_wall_s": 2.0},
        "rows": [row],
    }
    results = {"mode": "short", "runs": 1, "seed": 1, "scenarios": {"upload-rate": scenario},
               "machine": {"cores": 2, "os": "x", "python": "y", "packages": {}}}
    paths = write_results(results, tmp_path)
    assert "| cvbulk | 600.0 |" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["scenarios"]["upload-rate"]["chart"] == "throughput-upload-rate.png"
    with Image.open(tmp_path / "throughput-upload-rate.png") as png:
        assert png.size[0] > 500


def test_suite_entry_point_runs_a_scenario(cache, tmp_path, capsys):
    assert bench_main(["--short", "--scenario", "prepare", "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = data["scenarios"]["prepare"]["rows"]
    assert [r["median"]["ips"] > 0 for r in rows] == [True, True, True]
    assert "5. Prepare" in capsys.readouterr().out


def test_only_takes_short_names_and_refuses_unknown_ones(cache, tmp_path, capsys):
    from benchmarks.__main__ import _only

    assert _only("upload_s0,cpu,memory") == ["upload-rate", "upload-cpu", "memory"]
    assert _only("prepare, upload-cpu") == ["prepare", "upload-cpu"]
    with pytest.raises(SystemExit):
        bench_main(["--short", "--only", "nope"])
    assert "unknown scenario 'nope'" in capsys.readouterr().err
