"""Running the emulator: in-process (``Emulator``) or on its own loop in a thread (``EmulatorThread``)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import aiohttp
import anyio
from aiohttp import web

from ._app import build_app, build_storage_app
from ._config import EmulatorConfig, Faults, Latency
from ._state import EmulatorState

__all__ = ["Emulator", "EmulatorThread"]

class Emulator:
    """A local Custom Vision service on the running event loop::

        async with Emulator(EmulatorConfig(tier="S0")) as emu:
            client = TrainingClient(emu.endpoint, emu.training_key)
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.endpoint = ""
        self.port = 0
        # Image URIs, export tokens and model links are served here, as the service serves them from a
        # storage account's host: same host, a port of its own, signed links, no key.
        self.storage_endpoint = ""
        self.storage_port = 0
        self.data_dir: Path | None = None
        self._state: EmulatorState | None = None
        self._runner: web.AppRunner | None = None
        self._storage_runner: web.AppRunner | None = None
        self._temp = False

    def __repr__(self) -> str:
        return f"Emulator(endpoint={self.endpoint!r}, tier={self.config.tier!r})"

    @property
    def training_key(self) -> str:
        return self.config.training_key

    @property
    def prediction_key(self) -> str:
        return self.config.prediction_key

    @property
    def prediction_resource_id(self) -> str:
        return self.config.prediction_resource_id

    def set_faults(self, faults: Faults) -> None:
        self._require().set_faults(faults)

    def set_latency(self, latency: Latency) -> None:
        self._require().latency = latency

    def advance_clock(self, seconds: float) -> None:
        """Move the clock signed links are issued and checked by forward: every link issued before now
        expires ``seconds`` sooner (a test expires links mid-run without waiting for them to)."""
        self._require().signer.advance(seconds)

    def set_rates(self, *, training_tps: float | None = None, prediction_tps: float | None = None,
                  tier: str | None = None) -> None:
        """Change the rate limits at runtime (None keeps the tier's rate for that API)."""
        state = self._require()
        state.rates.configure(tier or state.rates.tier, training_tps, prediction_tps)

    def _require(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("the emulator is not running")
        return self._state

    async def __aenter__(self) -> Emulator:
        cfg = self.config
        if cfg.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="cvbulk-emulator-"))
            self._temp = True
        else:
            self.data_dir = Path(cfg.data_dir)
        try:
            self._state = await anyio.to_thread.run_sync(EmulatorState.open, cfg, self.data_dir)
            self._state.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
            self._runner = web.AppRunner(
                build_app(self._state), access_log=None, handle_signals=False,
                shutdown_timeout=2.0,  # a request stalled mid-body must not hold a stop for 60 s
                # A connection idle or stuck in its request head this long is closed (half-open
                # clients); bodies have their own deadline (config.read_timeout).
                keepalive_timeout=cfg.header_timeout,
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, cfg.host, cfg.port, backlog=1024)
            await site.start()
            self.port = self._runner.addresses[0][1]
            self._storage_runner = web.AppRunner(
                build_storage_app(self._state), access_log=None, handle_signals=False, shutdown_timeout=2.0,
                keepalive_timeout=cfg.header_timeout,
            )
            await self._storage_runner.setup()
            self.storage_port = self._state.storage_port = await _listen_storage(
                self._storage_runner, cfg.host, cfg.storage_port, self.data_dir / "storage.port")
            host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
            self.endpoint = f"http://{host}:{self.port}"
            self.storage_endpoint = f"http://{host}:{self.storage_port}"
            for job in await anyio.to_thread.run_sync(self._state.store.pending_trainings):
                self._state.start_training(job)  # a stop interrupted these: train them again
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._close()

    async def _close(self) -> None:
        for runner in (self._runner, self._storage_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._storage_runner = None
        if self._state is not None:
            await self._state.background.close()  # trainings left in status Training resume at next start
            if self._state.http is not None:
                await self._state.http.close()
            self._state.store.close()
            self._state.blobs.close()
            self._state = None
        if self._temp and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


async def _listen_storage(runner: web.AppRunner, host: str, port: int, remembered: Path) -> int:
    """Start the storage listener; its port. Unless a port is given, the one of the data folder's last run
    when it is free again, so links issued before a restart keep working (as its signing secret does)."""
    if port == 0:
        try:
            last = int(remembered.read_text().strip())
        except (OSError, ValueError):
            last = 0
        if 0 < last < 65536:
            site = web.TCPSite(runner, host, last, backlog=1024)
            try:
                await site.start()
            except OSError:  # taken meanwhile: a free one
                await site.stop()
    if not runner.addresses:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    bound = int(runner.addresses[0][1])
    try:
        remembered.write_text(f"{bound}\n")
    except OSError:
        pass  # a read-only folder: links then last until a restart
    return bound


class EmulatorThread:
    """The same emulator on its own event loop in a daemon thread, for synchronous callers
    (the official SDK, benchmarks, the demo)::

        with EmulatorThread() as emu:
            trainer = CustomVisionTrainingClient(emu.endpoint, credentials)
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._emulator = Emulator(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cvbulk-emulator", daemon=True)

    def __repr__(self) -> str:
        return f"EmulatorThread(endpoint={self.endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._emulator.endpoint

    @property
    def port(self) -> int:
        return self._emulator.port

    @property
    def storage_endpoint(self) -> str:
        return self._emulator.storage_endpoint

    @property
    def storage_port(self) -> int:
        return self._emulator.storage_port

    @property
    def data_dir(self) -> Path | None:
        return self._emulator.data_dir

    @property
    def training_key(self) -> str:
        return self._emulator.training_key

    @property
    def prediction_key(self) -> str:
        return self._emulator.prediction_key

    @property
    def prediction_resource_id(self) -> str:
        return self._emulator.prediction_resource_id

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with self._emulator:
                    self._ready.set()
                    await self._stop.wait()
            finally:
                self._ready.set()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def _call(self, fn: Callable[..., None], *args: object, **kwargs: object) -> None:
        # Switches are flipped on the emulator's own loop, between two requests.
        assert self._loop is not None
        done = threading.Event()

        def apply() -> None:
            try:
                fn(*args, **kwargs)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(apply)
        done.wait(10)

    def set_faults(self, faults: Faults) -> None:
        self._call(self._emulator.set_faults, faults)

    def set_latency(self, latency: Latency) -> None:
        self._call(self._emulator.set_latency, latency)

    def advance_clock(self, seconds: float) -> None:
        self._call(self._emulator.advance_clock, seconds)

    def set_rates(self, *, training_tps: float | None = None, prediction_tps: float | None = None,
                  tier: str | None = None) -> None:
        self._call(self._emulator.set_rates, training_tps=training_tps, prediction_tps=prediction_tps, tier=tier)

    def start(self) -> EmulatorThread:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        if not self._emulator.endpoint:
            raise RuntimeError("the emulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
