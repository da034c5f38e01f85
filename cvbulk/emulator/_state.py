"""What the handlers of one emulator share: config, store, blobs, limits, switches, models."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
from aiohttp import web

from ._background import Background
from ._blobs import BlobStore
from ._config import EmulatorConfig, Faults, Latency
from ._limits import RateLimits
from ._models import ModelCache, run_training_job
from ._signing import UrlSigner, load_secret
from ._store import Store

__all__ = ["EmulatorState", "STATE"]


@dataclass
class EmulatorState:
    config: EmulatorConfig
    data_dir: Path
    store: Store
    blobs: BlobStore
    rates: RateLimits
    models: ModelCache
    faults: Faults
    latency: Latency
    rng: random.Random
    cpu: anyio.CapacityLimiter
    signer: UrlSigner
    background: Background = field(default_factory=Background)
    http: aiohttp.ClientSession | None = None
    storage_port: int = 0  # the listener of image URIs, export tokens and model links (its own origin)
    throttle_left: int = 0
    perf_locks: dict = field(default_factory=dict)
    exports_running: set = field(default_factory=set)  # (iteration, platform, flavor) being built

    @classmethod
    def open(cls, config: EmulatorConfig, data_dir: Path) -> EmulatorState:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "models").mkdir(exist_ok=True)
        (data_dir / "exports").mkdir(exist_ok=True)
        return cls(
            config=config,
            data_dir=data_dir,
            store=Store(data_dir / "emulator.sqlite3", config.limits),
            blobs=BlobStore(data_dir / "blobs"),
            rates=RateLimits(config),
            models=ModelCache(data_dir / "models"),
            faults=config.faults,
            latency=config.effective_latency,
            rng=random.Random(config.seed),
            cpu=anyio.CapacityLimiter(max(1, os.cpu_count() or 1)),
            throttle_left=config.faults.throttle_burst,
            signer=UrlSigner(load_secret(data_dir), config.url_ttl_seconds),
        )

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.throttle_left = faults.throttle_burst

    def start_training(self, job: dict) -> None:
        self.background.start_soon(
            run_training_job, self.store, self.blobs, self.data_dir / "models", job, self.cpu, self.config.seed,
            self.config.training_seconds,
        )


STATE = web.AppKey("cvbulk_emulator_state", EmulatorState)
