"""`cvbulk check` of a container (as `cvbulk upload` takes it), against Azurite and the emulator: the blobs and
their virtual-folder (or label-file) tags against the project; files upload skips by rule (label files, hidden
ones) are listed as skipped and do not make the trees differ, locally as in a container."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from tests._azurite import azurite, azurite_container, put_into  # noqa: F401  (fixtures)

from ._support import assert_one_line_error, cli
from .test_cmd_export import KEY, cvbulk, env_for

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).resolve().parents[2] / "cvbulk" / "samples" / "ImageClassification" / "Images"


def _tree() -> dict[str, bytes]:
    blobs = {f"{tag}/{p.name}": p.read_bytes() for tag in ("Hemlock", "Japanese_Cherry")
             for p in sorted((SAMPLES / tag).glob("*.jpg"))[:2]}
    blobs["model.json"] = b"{}"  # what an export leaves next to the images
    blobs["Hemlock/.DS_Store"] = b"x"
    return blobs


def test_check_of_a_container_after_its_upload(tmp_path, azurite, azurite_container):  # noqa: F811
    blobs = _tree()

    anyio.run(put_into, azurite, azurite_container, blobs)
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        env = env_for(emulator) | azurite.environ()
        root = f"az://{azurite_container}/"
        up = cvbulk("upload", root, "--project", "chk", "--create", "--tier", "unlimited", env=env, cwd=tmp_path)
        assert up.returncode == 0, up.stderr[-1500:]
        same = cvbulk("check", root, "--project", "chk", "--progress", "none", env=env, cwd=tmp_path)
        assert same.returncode == 0, same.stderr[-1500:]
        lines = same.stdout.splitlines()
        assert sum(line.startswith("= ") for line in lines) == 4, same.stdout
        assert any(line.startswith(". model.json") for line in lines), same.stdout
        assert "they match" in same.stderr and "az:/" + "/" in same.stderr

        # one blob more, one moved to the other tag: both named, exit 1
        async def change() -> None:
            from azure.storage.blob.aio import BlobServiceClient

            async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
                c = service.get_container_client(azurite_container)
                first = sorted(n for n in blobs if n.startswith("Hemlock/") and n.endswith(".jpg"))[0]
                await c.upload_blob("Japanese_Cherry/moved.jpg", blobs[first], overwrite=True)
                await c.delete_blob(first)
                extra = sorted((SAMPLES / "Hemlock").glob("*.jpg"))[5]
                await c.upload_blob("Hemlock/new.jpg", extra.read_bytes(), overwrite=True)

        anyio.run(change)
        differ = cvbulk("check", root, "--project", "chk", "--json", "--progress", "none", env=env, cwd=tmp_path)
        assert differ.returncode == 1, differ.stderr[-1500:]
        result = json.loads(differ.stdout)
        assert result["counts"]["tags_differ"] == 1 and result["counts"]["only_local"] == 1, result["counts"]
        for text in (up.stdout, up.stderr, same.stdout, same.stderr, differ.stdout, differ.stderr):
            assert KEY not in text and azurite.account_key not in text


def test_files_upload_skips_by_rule_do_not_make_a_folder_differ(tmp_path, monkeypatch, capsys):
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emu", training_key=KEY)) as emulator:
        monkeypatch.setenv("VISION_TRAINING_ENDPOINT", emulator.endpoint)
        monkeypatch.setenv("VISION_TRAINING_KEY", emulator.training_key)
        root = tmp_path / "Images"
        for tag in ("Hemlock", "Japanese_Cherry"):
            (root / tag).mkdir(parents=True)
            shutil.copy(sorted((SAMPLES / tag).glob("*.jpg"))[0], root / tag)
        (root / "labels.csv").write_text("path,tags\n", encoding="utf-8")
        (root / "notes.txt").write_text("x", encoding="utf-8")
        code, _, err = cli(capsys, "upload", str(root), "--project", "skips", "--create", "--tier", "unlimited")
        assert code == 0, err
        code, out, err = cli(capsys, "check", str(root), "--project", "skips", "--json", "--progress", "none")
        assert code == 0, err
        result = json.loads(out)
        assert result["matched"] is True and result["counts"]["skipped"] == 2 and result["counts"]["match"] == 2
        (root / "Hemlock" / "broken.jpg").write_bytes(b"not an image")  # one upload would reject: still "!"
        code, out, err = cli(capsys, "check", str(root), "--project", "skips", "--progress", "none")
        assert code == 1 and "! Hemlock/broken.jpg" in out


def test_check_of_a_container_with_a_sas_never_shows_it(capsys, monkeypatch):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    root = "https://acct.blob.core.windows.net/trees/?sv=2024-08-04&sp=rl&sig=SECRETSIGNATURE0123"
    code, out, err = cli(capsys, "check", root, "--project", "trees")
    assert code in (2, 3) and "SECRETSIGNATURE0123" not in out + err
    assert_one_line_error(err)


def test_check_of_a_missing_folder_still_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    code, _, err = cli(capsys, "check", str(tmp_path / "nope"), "--project", "trees")
    assert code == 2 and "is not a folder" in err
