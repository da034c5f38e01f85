"""The --image-url-prefix an AutoML export into a container needs (AutoML reads no relative image_url)."""

from __future__ import annotations

from cvbulk.pipeline.formats.automl import datastore_prefix_hint


def test_a_container_location_gives_the_datastore_path_of_its_prefix():
    hint = datastore_prefix_hint("az://exp/trees/automl")
    assert hint is not None
    assert "--image-url-prefix azureml://datastores/<DATASTORE>/paths/trees/automl/ " in hint and "'exp'" in hint
    assert "paths/ " in (datastore_prefix_hint("az://exp") or "")


def test_a_sas_in_the_location_is_never_in_the_hint():
    hint = datastore_prefix_hint("https://acct.blob.core.windows.net/exp/a/?sv=2024-08-04&sp=rwl&sig=SECRET0123")
    assert hint is not None and "SECRET0123" not in hint and "sv=" not in hint and "paths/a/ " in hint


def test_a_folder_gives_none():
    assert datastore_prefix_hint("./out") is None
    assert datastore_prefix_hint("out/automl") is None
