"""``cvbulk upload`` from a container as a user types it (in-process): the lines a wrong ROOT gets, a label
file kept in the container, and nothing secret in what is printed."""

from __future__ import annotations

import json

import anyio
import pytest

from tests._azurite import azurite, azurite_container, put_into  # noqa: F401  (fixtures, helper)
from tests.pipeline._blob_support import sample_blobs

from ._support import assert_one_line_error, cli, emulator, set_env  # noqa: F401  (emulator: a fixture)

pytestmark = pytest.mark.timeout(120)

SECRET_KEY = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"


def test_an_unsupported_scheme_is_named_not_taken_for_a_folder(tmp_path, emulator, monkeypatch, capsys):
    set_env(monkeypatch, emulator)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "upload", "s3://bucket/images", "--project", "p")
    assert code == 2
    assert_one_line_error(err)
    assert "'s3://'" in err and "az://" in err and "not a folder" not in err


def test_a_connection_string_given_as_root_is_refused_without_showing_it(tmp_path, emulator, monkeypatch, capsys):
    set_env(monkeypatch, emulator)
    monkeypatch.chdir(tmp_path)
    text = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET_KEY};EndpointSuffix=core.windows.net"
    code, out, err = cli(capsys, "upload", text, "--project", "p")
    assert code == 2
    assert_one_line_error(err)
    assert "AZURE_STORAGE_CONNECTION_STRING" in err
    assert SECRET_KEY not in out + err and list(tmp_path.iterdir()) == []


def test_a_connection_string_given_to_export_creates_no_folder(tmp_path, emulator, monkeypatch, capsys):
    set_env(monkeypatch, emulator)
    monkeypatch.chdir(tmp_path)
    text = f"AccountName=acct;AccountKey={SECRET_KEY}"
    for argv in (("export", text), ("export", "--to", text)):
        code, out, err = cli(capsys, *argv, "--project", "p")
        assert code == 2, err
        assert_one_line_error(err)
        assert SECRET_KEY not in out + err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["blob", "name"])
def test_a_label_file_in_the_container(tmp_path, emulator, azurite, azurite_container, monkeypatch, capsys, where):  # noqa: F811
    blobs = dict(list(sample_blobs(skip="-").items())[:6])
    names = sorted(blobs)
    manifest = "path,tags\n" + "".join(f"{n},{'odd' if k % 2 else 'even'}\n" for k, n in enumerate(names))
    anyio.run(_put, azurite, azurite_container, {**{f"set/{n}": d for n, d in blobs.items()},
                                                 "set/meta/manifest.csv": manifest.encode()})
    set_env(monkeypatch, emulator, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    monkeypatch.chdir(tmp_path)
    labels = f"az://{azurite_container}/set/meta/manifest.csv" if where == "blob" else "meta/manifest.csv"
    code, out, err = cli(capsys, "upload", f"az://{azurite_container}/set", "--project", f"labels-{where}",
                         "--create", "--labels", labels, "--tier", "unlimited", "--json", "--progress", "none")
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"] == {"uploaded": 6, "skipped": 1}  # the manifest itself is not an image
    assert sorted(report["extra"]["tags_created"]) == ["even", "odd"]


def test_a_label_file_not_in_the_container_is_one_line(tmp_path, emulator, azurite, azurite_container, monkeypatch, capsys):  # noqa: F811
    anyio.run(_put, azurite, azurite_container, dict(list(sample_blobs(skip="-").items())[:1]))
    set_env(monkeypatch, emulator, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "upload", f"az://{azurite_container}/", "--project", "p", "--create",
                       "--labels", f"az://{azurite_container}/nope/labels.csv", "--tier", "unlimited")
    assert code == 2
    assert_one_line_error(err)
    assert "not found" in err


_put = put_into


def test_a_sas_token_that_can_write_never_goes_to_the_service(tmp_path, emulator, azurite, azurite_container, monkeypatch, capsys):  # noqa: F811
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from tests._azurite import ACCOUNT, KEY

    anyio.run(_put, azurite, azurite_container, dict(list(sample_blobs().items())[:4]))
    token = generate_container_sas(ACCOUNT, azurite_container, account_key=KEY, expiry=datetime.now(timezone.utc)
                                   + timedelta(hours=1), permission=ContainerSasPermissions(read=True, write=True, list=True))
    set_env(monkeypatch, emulator)
    monkeypatch.chdir(tmp_path)
    where = f"{azurite.url(azurite_container)}?{token}"
    code, out, err = cli(capsys, "upload", where, "--project", "wide-sas", "--create", "--tier", "unlimited",
                         "--json", "--progress", "none")
    assert code == 0, err
    sent = json.loads(out)["extra"]["source"]["sent"]
    assert sent["by_url"] == 0 and sent["as_bytes"] == 4
    assert "grants more than read" in err and token not in out + err
    code, out, err = cli(capsys, "upload", where, "--project", "wide-sas", "--via", "url")
    assert code == 2
    assert_one_line_error(err)
    assert "grants more than read (sp=rwl)" in err and token not in err
