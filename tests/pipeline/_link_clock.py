"""Links that expire mid-run, deterministically: a client whose downloads move the emulator's link clock
(``Emulator.advance_clock``) past every link's lifetime once it has started a given number of them. Every
link issued before then answers 403 AuthenticationFailed, as an Azure SAS link past its expiry does, without
the test waiting for real links to expire (or slowing the run until they do)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cvbulk.client import TrainingClient


class LinksExpireAt(TrainingClient):
    """A TrainingClient of ``emulator`` whose ``expire_at``-th downloads (1-based, as started) first expire
    every link the emulator has issued so far. ``downloads`` counts the downloads started."""

    def __init__(self, emulator: Any, expire_at: Iterable[int], **kwargs: Any) -> None:
        super().__init__(emulator.endpoint, emulator.training_key, **kwargs)
        self.emulator = emulator
        self.expire_at = frozenset(expire_at)
        self.downloads = 0
        self.expired = 0  # times every link was expired

    async def download(self, url: str) -> bytes:
        self.downloads += 1
        if self.downloads in self.expire_at:
            self.emulator.advance_clock(self.emulator.config.url_ttl_seconds + 1)
            self.expired += 1
        return await super().download(url)
