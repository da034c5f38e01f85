"""The emulator (``python -m cvbulk emulator``, its own process) under 200 concurrent connections for
30 s: mixed reads and CreateImagesFromData writes from a plain aiohttp client (connector limit 200).
No request may fail; afterwards the database passes ``PRAGMA integrity_check`` and the project's image
count equals the uploads the emulator accepted. It binds 127.0.0.1 by default and answers 401 to a
wrong key.
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import anyio
import pytest
from PIL import Image

from cvbulk.emulator import EmulatorConfig

from .conftest import REPO, integrity, measure

CONNECTIONS = 200
DURATION = 30.0
_LINE = re.compile(r"listening on (http://\S+)\s+training-key=(\S+)\s+prediction-key=(\S+)")


@pytest.fixture
def server(tmp_path):
    """The emulator as a user starts it: (endpoint, training key, prediction key, data folder)."""
    data = tmp_path / "data"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvbulk", "emulator", "--port", "0", "--data", str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once it listens
        match = _LINE.search(line)
        assert match, (line, proc.poll())
        yield match.group(1), match.group(2), match.group(3), data, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if int(hexport, 16) == port and fields[3] == "0A":
                found.add(addr)
    return found


def _unique_jpeg(base: bytes, n: int) -> bytes:
    """The same small picture with a JPEG comment (COM segment) holding ``n``: distinct content."""
    payload = f"cvbulk-load-{n}".encode()
    return base[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + base[2:]


def test_default_host_is_loopback():
    assert EmulatorConfig().host == "127.0.0.1"


@pytest.mark.timeout(120)
async def test_200_connections_for_30_seconds(server):
    endpoint, tkey, pkey, data, proc = server
    port = int(endpoint.rsplit(":", 1)[1])
    assert endpoint.startswith("http://127.0.0.1:")
    assert _listening_addresses(port) == {"0100007F"}, "the emulator should listen on 127.0.0.1 only"

    training = f"{endpoint}/customvision/v3.3/training"
    good = {"Training-Key": tkey}
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (120, 80, 40)).save(buf, "JPEG", quality=80)
    base = buf.getvalue()

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        # a wrong key, or none, is refused: training and prediction alike
        for headers in ({"Training-Key": "wrong-" + tkey}, {}):
            async with http.get(f"{training}/projects", headers=headers) as r:
                assert r.status == 401
        async with http.post(
            f"{endpoint}/customvision/v3.0/prediction/00000000-0000-0000-0000-000000000000/classify/"
            "iterations/x/image/nostore", headers={"Prediction-Key": "wrong-" + pkey}, data=base,
        ) as r:
            assert r.status == 401

        async with http.post(f"{training}/projects", params={"name": "load"}, headers=good) as r:
            assert r.status == 200, await r.text()
            pid = (await r.json())["id"]
        tag_ids = []
        for name in ("x", "y"):
            async with http.post(f"{training}/projects/{pid}/tags", params={"name": name}, headers=good) as r:
                assert r.status == 200
                tag_ids.append((await r.json())["id"])

        counter = iter(range(10**9))
        tally = {"reads": 0, "writes": 0, "accepted": 0, "errors": 0, "inflight": 0, "max_inflight": 0}
        problems: list[str] = []
        end = time.monotonic() + DURATION

        async def one(rnd: random.Random) -> None:
            tally["inflight"] += 1
            tally["max_inflight"] = max(tally["max_inflight"], tally["inflight"])
            try:
                if rnd.random() < 0.4:
                    form = aiohttp.FormData()
                    for _ in range(rnd.randint(1, 4)):
                        n = next(counter)
                        form.add_field("imageData", _unique_jpeg(base, n), filename=f"{n}.jpg",
                                       content_type="image/jpeg")
                    params = {"tagIds": rnd.choice(tag_ids)}
                    async with http.post(f"{training}/projects/{pid}/images", params=params, data=form,
                                         headers=good) as r:
                        body = await r.json(content_type=None)
                        if r.status not in (200, 207):
                            raise AssertionError(f"create: HTTP {r.status} {str(body)[:200]}")
                        statuses = [im["status"] for im in body["images"]]
                        if any(s != "OK" for s in statuses):
                            raise AssertionError(f"create: {statuses}")
                        tally["accepted"] += len(statuses)
                        tally["writes"] += 1
                else:
                    path = rnd.choice(
                        [f"/projects/{pid}", f"/projects/{pid}/tags", f"/projects/{pid}/images/count",
                         f"/projects/{pid}/images?take=20", "/projects", "/domains"]
                    )
                    async with http.get(training + path, headers=good) as r:
                        await r.read()
                        if r.status != 200:
                            raise AssertionError(f"GET {path}: HTTP {r.status}")
                        tally["reads"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                tally["errors"] += 1
                if len(problems) < 5:
                    problems.append(f"{type(exc).__name__}: {exc}")
            finally:
                tally["inflight"] -= 1

        async def worker(seed: int) -> None:
            rnd = random.Random(seed)
            while time.monotonic() < end:  # the run's length is the test's definition, not a wait
                await one(rnd)

        async with anyio.create_task_group() as tg:
            for i in range(CONNECTIONS):
                tg.start_soon(worker, i)

        assert tally["errors"] == 0, problems
        async with http.get(f"{training}/projects/{pid}/images/count", headers=good) as r:
            count = int(await r.json())
    assert proc.poll() is None, "the emulator died under load"
    assert count == tally["accepted"]
    assert tally["max_inflight"] == CONNECTIONS
    assert tally["writes"] > 0 and tally["reads"] > 0
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert integrity(data / "emulator.sqlite3") == "ok"
    measure("emulator: 200 connections for 30 s", requests=tally["reads"] + tally["writes"],
            reads=tally["reads"], writes=tally["writes"], images_sent=tally["accepted"], in_project=count,
            errors=tally["errors"], duplicates=0, lost=count - tally["accepted"])


@pytest.mark.timeout(60)
def test_stop_is_prompt_with_a_request_stalled_mid_body(tmp_path):
    """A client that sent half a body and went quiet must not hold the emulator's stop for long."""
    import socket
    import threading

    from cvbulk.emulator import EmulatorThread

    emu = EmulatorThread(EmulatorConfig(data_dir=tmp_path / "emulator")).start()
    stalled = socket.create_connection(("127.0.0.1", emu.port))
    stopper = threading.Thread(target=emu.stop, daemon=True)
    try:
        head = (
            "POST /customvision/v3.0/prediction/00000000-0000-0000-0000-000000000001/classify/iterations/"
            f"prod/image/nostore HTTP/1.1\r\nHost: 127.0.0.1:{emu.port}\r\nPrediction-Key: {emu.prediction_key}"
            "\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        stalled.sendall(head.encode() + b"x" * 100)
        # The emulator has the request when it answers another one on a fresh connection.
        with socket.create_connection(("127.0.0.1", emu.port)) as probe:
            probe.sendall(f"GET /customvision/v3.3/training/projects HTTP/1.1\r\nHost: x\r\n"
                          f"Training-Key: {emu.training_key}\r\nConnection: close\r\n\r\n".encode())
            assert probe.recv(12).startswith(b"HTTP/1.1 200")
        stopper.start()
        stopper.join(5)
        assert not stopper.is_alive(), "stop() still waiting 5 s later"
    finally:
        stalled.close()  # lets a hung shutdown finish
        if stopper.is_alive():
            stopper.join(30)
        elif not stopper.ident:
            emu.stop()
