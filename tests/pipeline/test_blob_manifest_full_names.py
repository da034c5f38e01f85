"""A label manifest for a container ROOT with a prefix, whose paths are the blobs' full names (how Azure names a
blob: 'Hemlock/hemlock_1.jpg', with ROOT az://trees/Hemlock). README says a label file's paths are relative to
the prefix; a user who writes full names today gets every image skipped 'no label', every row 'listed in the
label file, but there is no such file under ROOT', 0 uploaded and exit status 0, with no word about the prefix.
Wanted: the names taken (they all start with the prefix), or the run says so (naming the prefix), not exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests._azurite import azurite, azurite_container, put_into  # noqa: F401  (fixtures)
from tests.cli.test_cmd_export import KEY, cvbulk, env_for

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).resolve().parents[2] / "cvbulk" / "samples" / "ImageClassification" / "Images" / "Hemlock"


def test_full_blob_names_in_a_manifest_are_taken_or_explained(tmp_path, azurite, azurite_container):  # noqa: F811
    images = sorted(SAMPLES.glob("*.jpg"))[:2]

    anyio.run(put_into, azurite, azurite_container, {f"Hemlock/{p.name}": p.read_bytes() for p in images})
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,tags\n" + "".join(f"Hemlock/{p.name},tree\n" for p in images), encoding="utf-8")
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        env = env_for(emulator) | azurite.environ()
        done = cvbulk("upload", f"az://{azurite_container}/Hemlock", "--project", "full-names", "--create",
                      "--labels", str(manifest), "--tier", "unlimited", "--json", env=env, cwd=tmp_path)
        taken = done.returncode == 0 and json.loads(done.stdout)["counts"].get("uploaded") == 2
        explained = done.returncode != 0 and "Hemlock/" in done.stderr and "prefix" in done.stderr
        assert taken or explained, (done.returncode, done.stderr[-1500:])


def test_a_manifest_naming_no_file_of_a_folder_ends_with_exit_1_and_the_reason(tmp_path):
    root = tmp_path / "trees" / "Hemlock"
    root.mkdir(parents=True)
    images = sorted(SAMPLES.glob("*.jpg"))[:2]
    for p in images:
        (root / p.name).write_bytes(p.read_bytes())
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,tags\n" + "".join(f"trees/Hemlock/{p.name},tree\n" for p in images), encoding="utf-8")
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        done = cvbulk("upload", str(root), "--project", "folder-names", "--create", "--labels", str(manifest),
                      "--tier", "unlimited", env=env_for(emulator), cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-1500:]
    assert "relative to ROOT" in done.stderr and f"trees/Hemlock/{images[0].name}" in done.stderr
