"""Image links that expire mid-export (the emulator signs them like Azure Storage SAS links, on a storage
origin of its own, and answers 403 AuthenticationFailed once they expire): the export renews them and ends
with 0 failures. The links are expired at chosen downloads by moving the emulator's link clock, not by
waiting: the run is as fast as it can be and expiry happens at the same point every time."""

from __future__ import annotations

import hashlib

import anyio
import pytest

from cvbulk.client import AuthenticationError, Pacer, RetryPolicy, TrainingClient
from cvbulk.emulator import Emulator, EmulatorConfig
from cvbulk.pipeline.export import ExportOptions, run_export
from tests.pipeline._link_clock import LinksExpireAt

from ._build import build_project

pytestmark = pytest.mark.timeout(90)
N = 150


@pytest.mark.parametrize("expire_at", [(40,), (30, 100)], ids=["once", "twice"])
async def test_expired_links_are_renewed_not_failed(tmp_path, expire_at):
    retry = RetryPolicy(max_attempts=4, base=0.05, cap=0.5, max_elapsed=20.0)
    async with Emulator(EmulatorConfig(data_dir=tmp_path / "emu")) as emu:
        async with TrainingClient(emu.endpoint, emu.training_key, pacer=Pacer.for_tier("unlimited"),
                                  retry=retry) as fast:
            pid = await build_project(fast, "expiring", "detection", N)
            stale = (await fast.get_images(pid, take=1))[0]
        # every link issued so far expires when the export starts its 40th download (and its 100th)
        async with LinksExpireAt(emu, expire_at, pacer=Pacer.for_tier("unlimited"), retry=retry) as client:
            with anyio.fail_after(60):
                result = await run_export(client, ExportOptions(pid, tmp_path / "out", "coco", max_concurrency=4))
            assert client.expired == len(expire_at)
            assert result.ok, (result.failures[:3], result.summary["count_check"])
            assert result.counts == {"exported": N} and result.failures == []
            refreshed = result.summary["link_refreshes"]
            # expired mid-run, renewed: every refused download was tried again with a fresh link
            assert refreshed > 0 and result.summary["downloads"] == N + refreshed == client.downloads
            calls = result.summary["link_refresh_calls"]
            assert 0 < calls < refreshed  # refused links renewed together, not one call each
            print(f"\nexpired at {expire_at}: {refreshed} links renewed in {calls} calls, 0 failures")
            # the link listed before the export has expired: refused as Azure Storage refuses it
            with pytest.raises(AuthenticationError, match="403"):
                await client.download(stale.original_image_uri)
    data = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "out" / "images").iterdir()}
    assert len(data) == N
