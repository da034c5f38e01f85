"""A ``--labels`` file kept in a container: copied to a local file once, so every label reader reads it as ever.

Two ways to name one: a location of its own (``az://c/exports/train/train.jsonl``, an ``https://`` or Azurite
URL, a SAS token in it), or, when ROOT is a container, a relative name not found on this machine but found
under ROOT's prefix (``--labels labels.csv``), as a relative label file is looked for under a local ROOT.
The copy keeps the blob's base name (its suffix picks the reader)."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ConfigError, FatalRunError

__all__ = ["fetch_label_file", "label_file_here"]


@asynccontextmanager
async def label_file_here(spec: str, *, root_source: Any = None) -> AsyncIterator[str]:
    """``spec`` as the label readers take it: as given for ``folders`` or a file on this machine, else (a label
    file in a container) the path of its copy in a temporary folder that lives as long as the block. The folder
    is made only when a copy may be needed: a run killed meanwhile leaves it behind."""
    if spec == "folders" or Path(spec).exists():
        yield spec
        return
    with tempfile.TemporaryDirectory(prefix="cvbulk-labels-") as folder:
        copied = await fetch_label_file(spec, Path(folder), root_source=root_source)
        yield str(copied) if copied is not None else spec


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


async def fetch_label_file(spec: str, dest_dir: Path, *, root_source: Any = None) -> Path | None:
    """The local copy (in ``dest_dir``) of the label file ``spec`` when it lives in a container, else None (a
    local file, ``folders``). ``root_source`` is ROOT's opened ``BlobFolder`` (None for a folder ROOT)."""
    from ..storage import CredentialError, LocationError, NotFoundError, StorageError, open_source, parse_location
    from .sources import is_container_location

    if spec == "folders":
        return None
    try:
        if is_container_location(spec):
            blob = parse_location(spec)
            name = blob.prefix.rstrip("/")
            if not name:
                raise ConfigError(f"--labels {_braces(str(blob))} names a container, not a label file in it")
            parent, _, base = name.rpartition("/")
            where = dataclasses.replace(blob, prefix=parent + "/" if parent else "")
            async with open_source(where) as source:
                return await _copy(source, base, dest_dir)
        local = Path(spec)
        if root_source is None or local.exists() or local.is_absolute() or PurePosixPath(spec).is_absolute():
            return None
        storage = root_source.storage
        try:
            await storage.stat(spec)
        except (StorageError, ValueError):  # ValueError: a name no blob can have ("../x.csv")
            return None  # not in the container either: the label reader says "not found" as for a folder
        return await _copy(storage, spec, dest_dir)
    except (LocationError, CredentialError) as exc:
        raise ConfigError(_braces(f"--labels: {exc}")) from None
    except NotFoundError as exc:
        said = str(exc)
        raise ConfigError(_braces(f"--labels: {said if 'label file' in said else 'label file not found: ' + said}")) from None
    except StorageError as exc:
        raise FatalRunError(_braces(f"--labels: {exc}")) from None


async def _copy(source: Any, name: str, dest_dir: Path) -> Path:
    from ..storage import NotFoundError, StorageError

    try:
        entry = await source.stat(name)
    except StorageError as exc:
        if exc.status != 404:
            raise
        raise NotFoundError(f"label file {name!r} not found in {source.location}") from None
    target = dest_dir / PurePosixPath(name).name
    with target.open("wb") as out:  # chunks of at most 1 MiB: a big manifest never sits in memory whole
        async for chunk in source.stream(entry):
            out.write(chunk)
    return target
