"""What the quickstart command tests share: a module-wide threaded emulator, the environment a
user would set, and running `cvbulk` in-process with its output captured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cvbulk.cli import main

VARS = (
    "VISION_TRAINING_ENDPOINT",
    "VISION_TRAINING_KEY",
    "VISION_PREDICTION_ENDPOINT",
    "VISION_PREDICTION_KEY",
    "VISION_PREDICTION_RESOURCE_ID",
)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from cvbulk.emulator import EmulatorConfig, EmulatorThread

    with EmulatorThread(EmulatorConfig(data_dir=tmp_path_factory.mktemp("emulator"))) as emu:
        yield emu


@pytest.fixture
def env(emulator, monkeypatch: pytest.MonkeyPatch):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("VISION_TRAINING_KEY", emulator.training_key)
    return emulator


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    assert err.startswith("cvbulk: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
