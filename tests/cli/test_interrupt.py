"""Ctrl-C (or SIGTERM) in the middle of a real ``cvbulk upload``: one line that says where it stopped and how to
go on, exit status 130 (143), and the same command then finishes the job."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator

import anyio
import pytest

from cvbulk.client import Pacer, TrainingClient
from tests.cli.test_cmd_upload import env_for
from tests.corpus import make_tree


@pytest.fixture(scope="module")
def slow_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from cvbulk.emulator import EmulatorConfig, EmulatorThread, Latency

    config = EmulatorConfig(data_dir=tmp_path_factory.mktemp("emulator"), latency=Latency(per_request=0.05))
    with EmulatorThread(config) as emu:
        yield emu


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
async def test_ctrl_c_says_where_it_stopped_exits_130_and_the_same_command_resumes(tmp_path, slow_emulator, stop, status):
    # SIGTERM (systemd, Kubernetes, timeout) stops the run the same way, with its own status
    root = tmp_path / "tree"
    expected = make_tree(root, {"a": 40, "b": 30})
    env = env_for(slow_emulator)
    # Small batches, two in flight, 50 ms a request: the run takes a few seconds, so Ctrl-C lands mid-run.
    project = f"ctrlc-{status}"
    argv = [sys.executable, "-m", "cvbulk", "upload", str(root), "--project", project, "--create",
            "--tier", "unlimited", "--batch-bytes", "12000", "--max-concurrency", "2", "--progress", "plain"]
    async with TrainingClient(
        slow_emulator.endpoint, slow_emulator.training_key, pacer=Pacer.for_tier("unlimited")
    ) as client:

        async def images_in() -> int:
            pid = next((p.id for p in await client.get_projects() if p.name == project), None)
            return await client.get_image_count(pid) if pid else 0

        with anyio.fail_after(60):
            async with await anyio.open_process(argv, env=env, cwd=tmp_path) as proc:
                while await images_in() < 10:
                    assert proc.returncode is None, "the upload ended before Ctrl-C"
                    await anyio.sleep(0.02)
                proc.send_signal(stop)
                await proc.wait()
                assert proc.stderr is not None
                raw = b""
                async for chunk in proc.stderr:
                    raw += chunk
                err = raw.decode()
        print(err)
        assert proc.returncode == status, err
        assert await images_in() < len(expected)
        lines = [line for line in err.splitlines() if line.strip()]
        hint = re.fullmatch(r"upload interrupted at (\d+)/70: run the same command again to resume", lines[-1])
        assert hint, err
        assert 0 < int(hint.group(1)) < 70
        assert "done" not in err and "Traceback" not in err and len(lines) <= 3, err

        with anyio.fail_after(60):
            again = await anyio.run_process(argv, env=env, cwd=tmp_path, check=False)
        text = again.stderr.decode()
        assert again.returncode == 0, text
        assert re.search(r"upload done: 70 files in .*already done \d+", text), text
        assert await images_in() == len(expected)
