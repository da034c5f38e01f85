"""AutoML-only flags given with another --format: one line, exit 2, before anything is exported (they used to be
ignored without a word: `--validation-split 0.2` with the default folders format gave no validation set)."""

from __future__ import annotations

import pytest

from ._support import assert_one_line_error, cli


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--validation-split", "0.2"], "--validation-split"),
        (["--format", "csv", "--image-url-prefix", "azureml://datastores/ds/paths/x/"], "--image-url-prefix"),
        (["--format", "coco", "--validation-split", "0.1"], "--validation-split"),
    ],
)
def test_automl_flags_with_another_format_are_refused(capsys, monkeypatch, tmp_path, flags, named):
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    code, _, err = cli(capsys, "export", "--to", "az://exp/x", "--project", "trees", *flags)
    assert code == 2, err
    assert_one_line_error(err)
    assert named in err and "--format automl" in err
    assert not (tmp_path / ".cvbulk").exists()


def test_include_untagged_stays_harmless_elsewhere(capsys, monkeypatch):
    # every other format writes untagged images anyway: nothing to refuse (the run fails later, unreachable)
    monkeypatch.setenv("VISION_TRAINING_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("VISION_TRAINING_KEY", "k")
    _, _, err = cli(capsys, "export", "--to", "az://exp/x", "--project", "trees", "--include-untagged")
    assert "--format automl" not in err
