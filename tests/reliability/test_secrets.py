"""Keys never leak: every artefact of a run is grepped for the keys.

Runs of ``cvbulk upload`` and ``cvbulk predict`` with ``--debug`` (HTTP details and retries logged),
with the keys in the environment and as flags, under injected 5xx (so retries are logged), a run
killed with SIGKILL (its WAL files left behind), and failing runs (wrong key, unknown project,
unknown published name) whose ``--debug`` output holds a traceback. Artefacts: stdout, stderr, and
every file the run left under its working folder and next to its output (state SQLite with its WAL
and SHM, JSON report, CSV / JSONL output, any log).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread, Faults, Latency

from .conftest import cli_env, cvbulk, journal_count, small_tree, train_and_publish, wait_until

pytestmark = pytest.mark.timeout(120)

TRAINING_KEY = "tk" + secrets.token_hex(16)
PREDICTION_KEY = "pk" + secrets.token_hex(16)
WRONG_KEY = "wk" + secrets.token_hex(16)
KEYS = (TRAINING_KEY, PREDICTION_KEY, WRONG_KEY)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets")
    config = EmulatorConfig(data_dir=tmp / "emulator", training_key=TRAINING_KEY, prediction_key=PREDICTION_KEY,
                            seed=61)
    with EmulatorThread(config) as emu:
        emu.model = anyio.run(train_and_publish, emu, "prod", tmp)[0]
        yield emu


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    small_tree(root, 20, seed=62)
    (root / "a" / "not-an-image.jpg").write_text("text\n")  # a failure row / report entry too
    return root


class Artefacts:
    """Everything runs wrote: their streams and the files under their folders."""

    def __init__(self) -> None:
        self.streams: list[tuple[str, str]] = []
        self.folders: list[Path] = []

    def add(self, name: str, done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        self.streams += [(f"{name} stdout", done.stdout), (f"{name} stderr", done.stderr)]
        return done

    def check(self) -> int:
        leaks = []
        for name, text in self.streams:
            leaks += [f"{name}: {k[:4]}..." for k in KEYS if k in text]
        files = [p for folder in self.folders for p in folder.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            leaks += [f"{path}: {k[:4]}..." for k in KEYS if k.encode() in data or k.encode("utf-16-le") in data]
        assert not leaks, leaks
        return len(files)


def _run_dir(tmp_path: Path, name: str, artefacts: Artefacts) -> Path:
    d = tmp_path / name
    d.mkdir()
    artefacts.folders.append(d)
    return d


def test_no_key_in_any_artefact(emu, tree, tmp_path):
    art = Artefacts()
    env_keys = cli_env(emu)
    flags_only = cli_env(None)  # no variables at all: endpoints and keys as flags
    flag_args = ["--endpoint", emu.endpoint, "--key", TRAINING_KEY]

    # upload, keys in the environment, --debug, while 20% of requests fail (retries are logged)
    emu.set_faults(Faults(error_rate=0.2, drop_rate=0.05))
    try:
        d = _run_dir(tmp_path, "upload-env", art)
        done = art.add("upload-env", cvbulk("upload", str(tree), "--project", "s-env", "--create", "--tier",
                                            "unlimited", "--batch-bytes", "4000", "--debug", env=env_keys, cwd=d))
        assert done.returncode == 1, done.stderr[-2000:]  # the text file is rejected
        assert "DEBUG" in done.stderr  # --debug really logged
        # upload, keys as flags, --debug --json
        d = _run_dir(tmp_path, "upload-flag", art)
        done = art.add("upload-flag", cvbulk("upload", str(tree), "--project", "s-flag", "--create", "--tier",
                                             "unlimited", "--debug", "--json", *flag_args, env=flags_only, cwd=d))
        assert done.returncode == 1, done.stderr[-2000:]
        # predict, keys in the environment, CSV
        d = _run_dir(tmp_path, "predict-env", art)
        done = art.add("predict-env", cvbulk("predict", str(tree), "--project", emu.model, "--published-name",
                                             "prod", "--output", str(d / "out.csv"), "--tier", "unlimited",
                                             "--debug", env=env_keys, cwd=d))
        assert done.returncode == 1, done.stderr[-2000:]
        # predict, keys as flags, JSONL, --json
        d = _run_dir(tmp_path, "predict-flag", art)
        done = art.add("predict-flag", cvbulk(
            "predict", str(tree), "--project", emu.model, "--published-name", "prod", "--output",
            str(d / "out.jsonl"), "--tier", "unlimited", "--debug", "--json", *flag_args,
            "--prediction-endpoint", emu.endpoint, "--prediction-key", PREDICTION_KEY, env=flags_only, cwd=d))
        assert done.returncode == 1, done.stderr[-2000:]
    finally:
        emu.set_faults(Faults())

    # failing runs with --debug: a traceback each, and no key in it
    failing = {
        "wrong-key-flag": ("upload", str(tree), "--project", "s-env", "--debug", "--endpoint", emu.endpoint,
                           "--key", WRONG_KEY),
        "unknown-project": ("upload", str(tree), "--project", "nope", "--debug", *flag_args),
        "unknown-published-name": ("predict", str(tree), "--project", emu.model, "--published-name", "nope",
                                   "--output", "o.csv", "--debug"),
        "wrong-prediction-key": ("predict", str(tree), "--project", emu.model, "--published-name", "prod",
                                 "--output", "o.csv", "--debug", "--prediction-key", WRONG_KEY),
    }
    for name, argv in failing.items():
        d = _run_dir(tmp_path, name, art)
        env = env_keys if "--key" not in argv else flags_only
        done = art.add(name, cvbulk(*argv, "--tier", "unlimited", env=env, cwd=d))
        assert done.returncode in (2, 3), (name, done.returncode, done.stderr[-1500:])
        assert "Traceback" in done.stderr, name

    # a run killed mid-way: its state file keeps its WAL and SHM
    emu.set_latency(Latency(per_request=0.05))
    try:
        d = _run_dir(tmp_path, "upload-killed", art)
        state = d / "state.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-m", "cvbulk", "upload", str(tree), "--project", "s-kill", "--create", "--tier",
             "unlimited", "--batch-bytes", "3000", "--max-concurrency", "2", "--state", str(state), "--debug",
             *flag_args],
            env=flags_only, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wait_until(lambda: journal_count(state, ("uploaded",)) >= 5, timeout=60, what="5 entries", proc=proc)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        art.streams += [("killed stdout", out), ("killed stderr", err)]
    finally:
        emu.set_latency(Latency())

    checked = art.check()
    assert checked >= 10, "the runs left fewer artefacts than expected"
    names = {p.name for folder in art.folders for p in folder.rglob("*")}
    assert any(n.endswith(".sqlite") or n.endswith(".state") for n in names)
    assert any(n.endswith(".report.json") for n in names) and "out.csv" in names and "out.jsonl" in names


async def test_no_key_in_logs_reprs_or_exceptions(emu, tree, tmp_path, caplog):
    """In-process: every log record at DEBUG of a run under faults, the reprs of the clients, and a
    failing run's exception with its whole traceback and chained causes hold no key."""
    import logging
    import traceback

    from cvbulk.client import PredictionClient, TrainingClient
    from cvbulk.pipeline.upload import UploadOptions, run_upload

    from .conftest import patient_retry

    caplog.set_level(logging.DEBUG)
    emu.set_faults(Faults(error_rate=0.2, drop_rate=0.05))
    try:
        async with TrainingClient(emu.endpoint, TRAINING_KEY, retry=patient_retry()) as client:
            result = await run_upload(client, UploadOptions(root=tree, project="s-logs", create=True,
                                                            state=tmp_path / "s.sqlite", tier="unlimited"))
            texts = [repr(client), str(client), repr(vars(client)) if hasattr(client, "__dict__") else ""]
    finally:
        emu.set_faults(Faults())
    assert not result.ok  # the text file
    async with PredictionClient(emu.endpoint, PREDICTION_KEY) as prediction:
        texts += [repr(prediction), str(prediction)]
    async with TrainingClient(emu.endpoint, WRONG_KEY) as wrong:
        with pytest.raises(Exception) as caught:
            await run_upload(wrong, UploadOptions(root=tree, project="s-logs", state=tmp_path / "w.sqlite",
                                                  tier="unlimited"))
        texts += [str(caught.value), repr(caught.value),
                  "".join(traceback.format_exception(caught.type, caught.value, caught.tb))]
    records = [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert any("DEBUG" == r.levelname for r in caplog.records)
    leaks = [k[:4] for k in KEYS for t in texts + records if k in t]
    assert not leaks, leaks
