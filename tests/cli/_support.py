"""What the quickstart command tests share: a module-wide threaded emulator, the environment a
user would set, and running `cvbulk` in-process with its output captured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cvbulk.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples" / "ImageClassification" / "Images"

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


def set_env(monkeypatch: pytest.MonkeyPatch, emulator, **more: str):
    """The user's environment: none of ``VARS`` but the training endpoint and key (and ``more``)."""
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("VISION_TRAINING_KEY", emulator.training_key)
    for name, value in more.items():
        monkeypatch.setenv(name, value)
    return emulator


@pytest.fixture
def env(emulator, monkeypatch: pytest.MonkeyPatch):
    return set_env(monkeypatch, emulator)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    assert err.startswith("cvbulk: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


async def trained_project(emulator, name: str, *, train: bool = True, publish_as: str | None = None) -> str:
    """A project of the Hemlock / Japanese_Cherry samples, trained (and published) unless told not to."""
    from cvbulk.client import TrainingClient

    async with TrainingClient(emulator.endpoint, emulator.training_key) as client:
        project = await client.create_project(name)
        for tag_name in ("Hemlock", "Japanese_Cherry"):
            tag = await client.create_tag(project.id, tag_name)
            images = [(f.name, f.read_bytes()) for f in sorted((SAMPLES / tag_name).glob("*.jpg"))]
            await client.create_images_from_data(project.id, images, tag_ids=[tag.id])
        if train:
            iteration = await client.train_project(project.id)
            await client.wait_for_iteration(project.id, iteration.id, poll=0.05, timeout=60)
            if publish_as:
                await client.publish_iteration(project.id, iteration.id, publish_as, emulator.prediction_resource_id)
    return project.id
