"""Issue 17, "Never hang": throttling is not an error, and it is said on screen.

Before the fix, the client's ``on_retry`` hook reached nothing a user sees: a run held up by a 429 storm
looked frozen. Now the job hands each retry wait to its progress sink as a phase line
(``throttled (HTTP 429) on CreateImagesFromData: trying again in 1.0 s (attempt 3)``), and puts the client's own hook back afterwards.
"""

from __future__ import annotations

import anyio
import pytest

from cvbulk.client import RetryEvent
from cvbulk.emulator import EmulatorConfig, EmulatorThread, Faults
from cvbulk.pipeline.engine import NullProgress, retry_notices, retry_text
from cvbulk.pipeline.upload import UploadOptions, run_upload
from tests.corpus import make_tree

from .conftest import training_client

pytestmark = pytest.mark.timeout(90)


class Phases(NullProgress):
    def __init__(self) -> None:
        self.phases: list[str] = []

    def phase(self, text: str) -> None:
        self.phases.append(text)


async def test_a_429_storm_at_the_start_is_waited_out_and_shown(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, {"a": 4, "b": 4}, size=(16, 16), seed=3)
    heard: list[RetryEvent] = []
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emulator", seed=3)) as emu:
        async with training_client(emu, on_retry=heard.append) as client:
            await client.create_project("storm")
            emu.set_faults(Faults(throttle_burst=4))
            progress = Phases()
            with anyio.fail_after(60):
                result = await run_upload(
                    client,
                    UploadOptions(root=root, project="storm", state=tmp_path / "s.sqlite", report=tmp_path / "r.json"),
                    progress=progress,
                )
            assert client.on_retry == heard.append  # the caller's own hook is back, and heard every wait too
    assert result.ok and result.counts == {"uploaded": 8}
    throttled = [p for p in progress.phases if p.startswith("throttled (HTTP 429) on ")]
    assert len(throttled) == 4 == len([e for e in heard if e.cause == "throttled"])
    assert throttled[0].endswith("(attempt 2)")  # the first attempt was throttled: the second follows


def test_retry_text_says_what_and_how_long():
    # RetryEvent.attempt is the attempt that failed; the line names the one that comes next
    assert retry_text(RetryEvent("CreateImagesFromFiles", 3, 1.0, "throttled", 429)) == (
        "throttled (HTTP 429) on CreateImagesFromFiles: trying again in 1.0 s (attempt 4)")
    assert retry_text(RetryEvent("GetTags", 1, 0.25, "server error", 503)) == (
        "server error (HTTP 503) on GetTags: trying again in 0.2 s (attempt 2)")
    assert retry_text(RetryEvent("GetTags", 2, 2.0, "connection", None)) == (
        "connection trouble on GetTags: trying again in 2.0 s (attempt 3)")


def test_retry_notices_without_progress_leaves_the_client_alone():
    class Client:
        on_retry = None

    c = Client()
    with retry_notices(None, c):
        assert c.on_retry is None
    with retry_notices(Phases(), c, None):
        assert c.on_retry is not None
    assert c.on_retry is None
