"""`cvbulk bench --emulator`: measures, prints, writes JSON and cleans up after itself."""

from __future__ import annotations

import json

import pytest

from cvbulk.cli import main

pytestmark = pytest.mark.timeout(60)


def test_bench_against_the_emulator(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--emulator", "--images", "20", "--latency", "0", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "upload" in printed and "images/s" in printed and "deleted the throw-away project" in printed
    result = json.loads(out.read_text())
    upload = result["upload"]
    assert upload["images"] == 20 and upload["failed"] == 0
    assert upload["images_per_s"] > 0 and upload["latency_ms"]["p50"] > 0
    assert upload["throttled_429"] == 0 and upload["concurrency_settled"] >= 1
    assert result["deleted"] is True and "predict" not in result


def test_bench_with_prediction_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--emulator", "--images", "20", "--predict", "--latency", "0", "--json",
                 "--output", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["predict"]["images"] == 20 and result["predict"]["images_per_s"] > 0
    assert result["deleted"] is True and result["training_s"] >= 0
    assert json.loads(out.read_text())["project_id"] == result["project_id"]


def test_bench_keep_leaves_the_project(tmp_path, capsys):
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    with EmulatorThread(EmulatorConfig()) as emu:
        code = main(["bench", "--endpoint", emu.endpoint, "--key", emu.training_key, "--tier", "unlimited",
                     "--images", "4", "--keep", "--json", "--output", str(tmp_path / "b.json")])
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["kept"] is True and "deleted" not in result
        from cvbulk.client import TrainingClient
        import anyio

        async def names() -> list[str]:
            async with TrainingClient(emu.endpoint, emu.training_key) as client:
                return [p.name for p in await client.get_projects()]

        assert result["project"] in anyio.run(names)


@pytest.mark.parametrize("argv", [["--images", "0"], ["--latency", "x,y"], ["--predict", "--images", "4"]])
def test_bench_usage_errors(argv, capsys):
    assert main(["bench", "--emulator", *argv]) == 2
    assert "cvbulk: error:" in capsys.readouterr().err
