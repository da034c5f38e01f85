"""``check`` of a container, below the CLI: a listing that fails mid-way is the run's one fatal line
(FatalRunError, exit 3), not an "unexpected StorageError"; a blob that cannot be read is that blob's "!"."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from cvbulk.pipeline.check import CheckOptions, _hash_container
from cvbulk.pipeline.errors import FatalRunError
from cvbulk.pipeline.labels import Labels
from cvbulk.storage import StorageError


class _Item:
    def __init__(self, relpath: str) -> None:
        self.relpath, self.size, self.entry = relpath, 10, relpath


class _Storage:
    async def read_all(self, entry: Any) -> bytes:
        raise StorageError(f"reading {entry!r} failed: HTTP 503")


class _Blobs:
    storage = _Storage()

    def __init__(self, fail_listing: bool) -> None:
        self.fail_listing = fail_listing

    async def entries(self, *, include_hidden: bool = False) -> Any:
        yield _Item("a/1.jpg")
        if self.fail_listing:
            raise StorageError("storage at http://127.0.0.1:1/acct did not answer within 8 s")


class _Labels:
    def labels_for(self, relpath: str) -> Labels:
        return Labels(("a",))


def _noop(phase: str, done: int, total: int | None) -> None:
    return None


def test_a_listing_that_fails_is_fatal():
    options = CheckOptions(root="az://c/", project="p")
    with pytest.raises(FatalRunError, match="did not answer"):
        anyio.run(_hash_container, _Blobs(True), _Labels(), options, _noop)


def test_a_blob_that_cannot_be_read_is_its_own_line():
    options = CheckOptions(root="az://c/", project="p")
    out = anyio.run(_hash_container, _Blobs(False), _Labels(), options, _noop)
    assert len(out) == 1 and out[0].sha256 is None and "HTTP 503" in out[0].problem
