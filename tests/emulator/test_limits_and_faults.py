"""Rate limits per tier (429 + Retry-After) and the misbehaviour switches, changed at runtime."""

from __future__ import annotations

import time

import aiohttp
import anyio
import pytest

from cvbulk.emulator import Emulator, EmulatorConfig, Faults, Latency

from ._helpers import Api

pytestmark = pytest.mark.timeout(30)


async def _statuses(api: Api, n: int) -> list[tuple[int, str | None, dict]]:
    out = []
    for _ in range(n):
        async with api.s.get(api.t + "/projects", headers=api.th) as resp:
            out.append((resp.status, resp.headers.get("Retry-After"), await resp.json()))
    return out


async def test_f0_training_rate_gives_429_with_retry_after():
    async with Emulator(EmulatorConfig(tier="F0", latency=Latency())) as emu, aiohttp.ClientSession() as s:
        results = await _statuses(Api(s, emu), 3)  # 2/s with a burst of 2: the third is refused
    assert [r[0] for r in results[:2]] == [200, 200]
    status, retry_after, body = results[2]
    assert status == 429 and retry_after == "1"
    message = body["error"]["message"]
    assert body["error"]["code"] == "429"
    assert message.startswith("Requests to the GetProjects Operation under Custom Vision Training API")
    assert "CustomVision F0 pricing tier" in message and "Please retry after 1 second." in message


async def test_no_retry_after_and_explicit_rates():
    config = EmulatorConfig(tier="unlimited", training_tps=1, retry_after=False)
    async with Emulator(config) as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        results = await _statuses(api, 2)
        assert [r[0] for r in results] == [200, 429] and results[1][1] is None
        emu.set_rates(training_tps=None, prediction_tps=None)  # back to the tier: unlimited
        assert {r[0] for r in await _statuses(api, 20)} == {200}


async def test_s0_prediction_groups_are_metered_apart():
    async with Emulator(EmulatorConfig(tier="S0", latency=Latency())) as emu, aiohttp.ClientSession() as s:
        url = f"{emu.endpoint}/customvision/v3.0/prediction/6a2b1a7d-0000-4000-8000-000000000000/classify/iterations/x/url"
        headers = {"Prediction-Key": emu.prediction_key}

        async def post(suffix: str, into: list[int]) -> None:
            async with s.post(url + suffix, json={"url": "http://127.0.0.1:9/x"}, headers=headers) as resp:
                into.append(resp.status)

        stored: list[int] = []
        nostore: list[int] = []
        # 30 at once against a bucket of 10 refilled at 10/s: some are refused unless the machine spreads
        # them over 2 s (a loaded machine can spread 11 over 0.1 s, and then none is refused)
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(post, "", stored)
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(post, "/nostore", nostore)
    assert set(stored) == {400, 429} and stored.count(400) >= 10  # 10/s with storage, then 429
    assert 429 not in nostore  # 20/s without storage is its own bucket, untouched by the other


async def test_throttle_burst_error_rate_drop_and_latency_switches():
    async with Emulator(EmulatorConfig(faults=Faults(throttle_burst=2))) as emu, aiohttp.ClientSession() as s:
        api = Api(s, emu)
        assert [r[0] for r in await _statuses(api, 3)] == [429, 429, 200]

        emu.set_faults(Faults(error_rate=1.0))
        codes = {r[0] for r in await _statuses(api, 6)}
        assert codes <= {500, 503} and codes

        # dropped before the work: nothing happened; after the work: done, but no answer
        for after, expected in ((0.0, 0), (1.0, 1)):
            emu.set_faults(Faults(drop_rate=1.0, drop_after_work=after))
            with pytest.raises(aiohttp.ClientError):
                async with s.post(api.t + "/projects", params={"name": f"d{after}"}, headers=api.th) as resp:
                    await resp.read()
            emu.set_faults(Faults())
            _, projects = await api.call("GET", "/projects")
            assert sum(p["name"] == f"d{after}" for p in projects) == expected

        emu.set_faults(Faults())
        emu.set_latency(Latency(per_request=0.2))
        started = time.monotonic()
        assert [r[0] for r in await _statuses(api, 1)] == [200]
        assert time.monotonic() - started >= 0.2
        emu.set_latency(Latency())
        # a bad key is refused before any fault: auth comes first, as at Azure's gateway
        emu.set_faults(Faults(error_rate=1.0))
        async with s.get(api.t + "/projects", headers={"Training-Key": "bad"}) as resp:
            assert resp.status == 401
