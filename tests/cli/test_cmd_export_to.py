"""``cvbulk export --to`` a container, as a user runs it: credentials from AZURE_STORAGE_CONNECTION_STRING,
the state file local and keyed by the destination, no key in any output or artefact."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import anyio
import pytest

from cvbulk.client import Pacer, TrainingClient
from cvbulk.emulator import EmulatorConfig, EmulatorThread
from cvbulk.storage import open_source
from tests._azurite import azurite, azurite_container  # noqa: F401  (fixtures)
from tests.pipeline._transfer_support import project_images

from .test_cmd_export import KEY, _samples_project, cvbulk, env_for

pytestmark = pytest.mark.timeout(120)

_SAMPLES = Path(__file__).resolve().parents[2] / "cvbulk" / "samples"
DETECTION = _SAMPLES / "ObjectDetection" / "Images"
REGIONS = _SAMPLES / "od_regions.json"


async def _names(where: str, environ) -> list[str]:
    async with open_source(where, environ=environ) as source:
        return sorted([e.name async for e in source.entries()])


async def _both(emulator, *names: str) -> list[dict]:
    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        by_name = {p.name: p.id for p in await c.get_projects()}
        return [await project_images(c, by_name[n]) for n in names]


def test_export_to_a_container(tmp_path, azurite, azurite_container):  # noqa: F811
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        anyio.run(_samples_project, emulator)
        env = env_for(emulator) | azurite.environ()
        where = f"az://{azurite_container}/trees"
        done = cvbulk("export", "--to", where, "--project", "trees", "--format", "csv", "--tier", "unlimited",
                      "--json", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["counts"] == {"exported": 20} and report["extra"]["destination"] == "container"
        names = anyio.run(_names, where, azurite.environ())
        assert "labels.csv" in names and "model.json" in names
        assert sum(n.startswith("images/") for n in names) == 20
        again = cvbulk("export", "--to", where, "--project", "trees", "--format", "csv", "--tier", "unlimited",
                       "--json", env=env, cwd=tmp_path)
        assert again.returncode == 0 and json.loads(again.stdout)["extra"]["unchanged"] == 20
        state_dir = tmp_path / ".cvbulk"
        assert [p.name for p in state_dir.glob("export-*.sqlite")]  # local, never in the container
        for text in (done.stdout, done.stderr, again.stdout, again.stderr):
            assert KEY not in text and azurite.account_key not in text
        for f in state_dir.iterdir():
            assert KEY.encode() not in f.read_bytes() and azurite.account_key.encode() not in f.read_bytes()

        # back into a new project straight from the container, by the command the export printed (the label
        # file read from the container too)
        hint = next(line for line in done.stderr.splitlines() if line.startswith("back into a project: "))
        argv = shlex.split(hint.split(": ", 1)[1])
        assert argv[:2] == ["cvbulk", "upload"] and "--labels" in argv
        argv = ["trees-back" if word == "NEW" else word for word in argv[1:]]
        back = cvbulk(*argv, "--tier", "unlimited", "--json", env=env, cwd=tmp_path)
        assert back.returncode == 0, back.stderr[-2000:]
        assert json.loads(back.stdout)["counts"]["uploaded"] == 20
        before, after = anyio.run(_both, emulator, "trees", "trees-back")
        assert before == after  # the same images (sha256) with the same tags


def test_automl_into_a_container_names_the_image_url_prefix_it_needs(tmp_path, azurite, azurite_container):  # noqa: F811
    # AutoML resolves no relative image_url: an export into a container without --image-url-prefix says which
    # one to add, and a rerun with it rewrites the JSONL without downloading again.
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        anyio.run(_samples_project, emulator)
        env = env_for(emulator) | azurite.environ()
        where = f"az://{azurite_container}/aml"
        first = cvbulk("export", "--to", where, "--project", "trees", "--format", "automl", "--tier", "unlimited",
                       "--progress", "none", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        note = next(line for line in first.stderr.splitlines() if line.startswith("note: image_url"))
        assert "--image-url-prefix azureml://datastores/<DATASTORE>/paths/aml/" in note, note
        prefix = "azureml://datastores/ds1/paths/aml/"
        again = cvbulk("export", "--to", where, "--project", "trees", "--format", "automl", "--tier", "unlimited",
                       "--image-url-prefix", prefix, "--json", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "note: image_url" not in again.stderr and json.loads(again.stdout)["extra"]["downloads"] == 0

        async def jsonl() -> bytes:
            async with open_source(where, environ=azurite.environ()) as source:
                entry = await source.stat("train/train.jsonl")
                return b"".join([chunk async for chunk in source.stream(entry)])

        rows = [json.loads(line) for line in anyio.run(jsonl).splitlines()]
        assert len(rows) == 20 and all(r["image_url"].startswith(prefix + "images/") for r in rows)


def test_yolo_into_a_container_does_not_print_a_way_back_that_drops_the_boxes(tmp_path, azurite, azurite_container):  # noqa: F811
    # upload cannot read YOLO's per-image label files from a container (tests/pipeline/test_blob_labels_yolo.py):
    # the command it would print uploads every image without its regions, exit 0. Say so instead.
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        env = env_for(emulator) | azurite.environ()
        done = cvbulk("upload", str(DETECTION), "--project", "boxes", "--create", "--exclude", "test", "--labels",
                      str(REGIONS), "--tier", "unlimited", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-1500:]
        out = cvbulk("export", "--to", f"az://{azurite_container}/y", "--project", "boxes", "--format", "yolo",
                     "--tier", "unlimited", "--progress", "none", env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-1500:]
        assert "back into a project: cvbulk upload az://" not in out.stderr, out.stderr
        note = next(line for line in out.stderr.splitlines() if line.startswith("back into a project:"))
        assert "YOLO" in note and "coco" in note, note
