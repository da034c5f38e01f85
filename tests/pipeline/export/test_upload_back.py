"""The "back into a project" line (the report's ``upload_back``), run as printed, gives back the project: the
same images (sha256), tags per image, regions within 1e-6, metadata where the label file carries it, and a
project of the same kind (the service's default classification type is Multilabel: a multi-class project must
say so)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import assert_same, build_project, contents

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]
N = 24


def run_hint(hint: str, name: str, emulator, cwd: Path) -> None:
    env = {**os.environ, "VISION_TRAINING_ENDPOINT": emulator.endpoint, "VISION_TRAINING_KEY": emulator.training_key,
           "PYTHONPATH": str(REPO), "CVBULK_TIER": "unlimited"}
    for command in hint.split("; then "):
        words = [name if w == "NEW" else w for w in shlex.split(command)]
        assert words[:2] == ["cvbulk", "upload"], hint
        done = subprocess.run([sys.executable, "-m", "cvbulk", *words[1:], "--progress", "none"], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, (command, done.stderr[-1500:])


async def _kind_of(client, project_id: str) -> tuple[str | None, str | None]:
    project = await client.get_project(project_id)
    return project.settings.domain_id, project.settings.classification_type


@pytest.mark.parametrize(("kind", "fmt", "metadata"), [
    ("multilabel", "folders", True),   # every tag of an image, not only its folder's
    ("multiclass", "folders", True),   # a multi-class project again, with its metadata
    ("detection", "folders", False),   # the boxes (regions.json), not a classification project
    ("detection", "csv", False),       # the boxes too: a CSV holds none, regions.json beside it does
    ("multiclass", "coco", True),
    ("multiclass", "automl", False),
])
async def test_the_printed_way_back_gives_back_the_project(tmp_path, emulator, training_client, kind, fmt, metadata):
    client = training_client
    source = await build_project(client, f"src-{kind}-{fmt}", kind, N, untagged=0 if fmt == "automl" else 3)
    with anyio.fail_after(60):
        result = await run_export(client, ExportOptions(source, tmp_path / "out", fmt))
    assert result.ok, (result.failures[:3], result.summary["count_check"])
    hint = result.summary["upload_back"]
    await anyio.to_thread.run_sync(run_hint, hint, f"back-{kind}-{fmt}", emulator, tmp_path)
    target = next(p.id for p in await client.get_projects() if p.name == f"back-{kind}-{fmt}")
    assert_same(await contents(client, source), await contents(client, target), metadata=metadata)
    assert await _kind_of(client, target) == await _kind_of(client, source), hint
