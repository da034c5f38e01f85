"""Image links that expire every few seconds (the emulator signs them like Azure Storage SAS links and
answers 403 AuthenticationFailed once they expire): the export renews them and ends with 0 failures."""

from __future__ import annotations

import hashlib

import anyio
import pytest

from cvbulk.client import AuthenticationError, Pacer, RetryPolicy, TrainingClient
from cvbulk.emulator import Emulator, EmulatorConfig
from cvbulk.pipeline.export import ExportOptions, run_export

from ._build import build_project

pytestmark = pytest.mark.timeout(90)
N = 150


@pytest.mark.parametrize("ttl", [2, 3])
async def test_expired_links_are_renewed_not_failed(tmp_path, ttl):
    retry = RetryPolicy(max_attempts=4, base=0.05, cap=0.5, max_elapsed=20.0)
    async with Emulator(EmulatorConfig(data_dir=tmp_path / "emu", url_ttl_seconds=ttl)) as emu:
        async with TrainingClient(emu.endpoint, emu.training_key, pacer=Pacer.for_tier("unlimited"),
                                  retry=retry) as fast:
            pid = await build_project(fast, "expiring", "detection", N)
            stale = (await fast.get_images(pid, take=1))[0]
        # a slowed export: the training rate limit (downloads from the endpoint count against it) at 30/s
        # makes the export of 150 images last about 5 s, longer than its links live
        async with TrainingClient(emu.endpoint, emu.training_key, pacer=Pacer(training_tps=30),
                                  retry=retry) as client:
            with anyio.fail_after(60):
                result = await run_export(client, ExportOptions(pid, tmp_path / "out", "coco", max_concurrency=4))
            assert result.ok, (result.failures[:3], result.summary["count_check"])
            assert result.counts == {"exported": N} and result.failures == []
            refreshed = result.summary["link_refreshes"]
            assert refreshed > 0 and result.summary["downloads"] == N + refreshed  # expired mid-run, renewed
            calls = result.summary["link_refresh_calls"]
            assert 0 < calls < refreshed  # refused links renewed together, not one call each
            print(f"\nttl {ttl}s: {refreshed} links renewed in {calls} calls, 0 failures")
            # the link listed before the export has expired: refused as Azure Storage refuses it
            with pytest.raises(AuthenticationError, match="403"):
                await client.download(stale.original_image_uri)
    data = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "out" / "images").iterdir()}
    assert len(data) == N
