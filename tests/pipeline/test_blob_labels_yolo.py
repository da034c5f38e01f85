"""YOLO labels with a container ROOT (`cvbulk export --format yolo --to az://...`, then uploading it back): the
regions must come back, or the run must refuse in one line. The data.yaml alone was copied to a temporary
folder and the per-image labels/*.txt looked for on this machine: none was found, every image was a
"background image", and with --untagged they were all uploaded without their boxes, exit 0. Now a container run
refuses YOLO labels (exit 2) with the download-then-upload way, which the export's hint prints too."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests._azurite import azurite, azurite_container, put_into  # noqa: F401  (fixtures)
from tests.cli.test_cmd_export import KEY, cvbulk, env_for

pytestmark = pytest.mark.timeout(120)

SAMPLE = Path(__file__).resolve().parents[2] / "cvbulk" / "samples" / "ObjectDetection" / "Images" / "fork"


async def _regions(emulator) -> list[tuple]:
    from cvbulk.client import Pacer, TrainingClient
    from tests.pipeline._transfer_support import project_images

    async with TrainingClient(emulator.endpoint, emulator.training_key, pacer=Pacer.for_tier("unlimited")) as c:
        project = next(p for p in await c.get_projects() if p.name == "yolo-back")
        return [regions for _, regions, _ in (await project_images(c, project.id)).values()]


def test_yolo_labels_in_a_container_keep_their_regions(tmp_path, azurite, azurite_container):  # noqa: F811
    images = sorted(SAMPLE.glob("*.jpg"))[:2]
    blobs = {f"images/{p.name}": p.read_bytes() for p in images}
    blobs |= {f"labels/{p.stem}.txt": b"0 0.5 0.5 0.4 0.3\n" for p in images}
    blobs["data.yaml"] = b"names: [fork]\n"

    anyio.run(put_into, azurite, azurite_container, blobs)
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        env = env_for(emulator) | azurite.environ()
        done = cvbulk("upload", f"az://{azurite_container}/", "--project", "yolo-back", "--create", "--untagged",
                      "--labels", f"az://{azurite_container}/data.yaml", "--tier", "unlimited", "--json",
                      env=env, cwd=tmp_path)
        refused = done.returncode == 2 and "YOLO" in done.stderr
        if not refused:
            assert done.returncode == 0, done.stderr[-2000:]
            report = json.loads(done.stdout)
            assert report["counts"].get("uploaded") == 2
            held = anyio.run(_regions, emulator)
            assert sorted(len(regions) for regions in held) == [1, 1], held  # each image with its box
