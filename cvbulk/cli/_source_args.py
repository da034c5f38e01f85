"""ROOT and ``--via`` for the jobs that read images (upload, predict): a folder or a blob container."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ._common import CLIError, check_concurrency, check_root, check_tps

__all__ = ["add_source_args", "source_root", "open_source", "is_container", "job_options"]

ROOT_HELP = (
    "the folder of images (walked recursively), or a blob container location: az://CONTAINER/PREFIX, "
    "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX"
)
VIA_HELP = (
    "from a container: url (the service fetches each image by a read-only SAS URL), bytes (cvbulk reads "
    "and sends them), auto (default: url, bytes for an image that needs a fix or that the service cannot fetch)"
)


def add_source_args(parser: argparse.ArgumentParser) -> None:
    # A string, not a Path: Path("az://c/p") would fold the "//".
    parser.add_argument("root", metavar="ROOT", help=ROOT_HELP)
    parser.add_argument("--via", choices=("auto", "url", "bytes"), default="auto", help=VIA_HELP)


def is_container(root: str) -> bool:
    from ..pipeline.sources import is_container_location

    return is_container_location(str(root))


# a URL scheme cvbulk does not read (s3://, gs://...): Path() would fold its "//" into a folder name
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
# what only a storage connection string or a SAS token holds: never shown back, never a folder
_SECRET = re.compile(r"(?i)(?:^|;)\s*(?:AccountKey|SharedAccessSignature)=|(?:^|&)sig=")


def source_root(root: str) -> Path:
    """The folder the job reads labels under: ROOT itself, or for a container the current folder (a
    label file named relative to it)."""
    if is_container(root):
        return Path.cwd()
    if _SECRET.search(root):
        raise CLIError(
            "ROOT is a storage connection string or SAS token, not a location: put it in "
            "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_SAS_TOKEN) and give az://CONTAINER/PREFIX"
        )
    scheme = _SCHEME.match(root)
    if scheme and scheme.group(1).lower() != "file":
        raise CLIError(
            f"unsupported location scheme {scheme.group(1).lower() + '://'!r}: use az://CONTAINER/PREFIX, "
            "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX or a local folder"
        )
    path = Path(root)
    check_root(path)
    return path


def job_options(options_class: Any, args: argparse.Namespace, **given: Any) -> Any:
    """A job's options (a dataclass) from the parsed flags that carry its field names, after the checks
    every reading job shares; ``given`` names the fields a flag does not give as it is."""
    check_tps(args.tps)
    check_concurrency(args.max_concurrency)
    from_flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(options_class) if hasattr(args, f.name)}
    return options_class(**{**from_flags, "root": source_root(args.root), **given})


@asynccontextmanager
async def open_source(args: argparse.Namespace) -> AsyncIterator[Any]:
    """The container's image source, opened and checked (None for a folder: the job's default)."""
    if not is_container(args.root):
        yield None
        return
    from ..pipeline.sources import open_image_source

    async with open_image_source(args.root, via=args.via) as source:
        refused = getattr(getattr(source, "storage", None), "urls_refused", None)
        if refused and not getattr(args, "quiet", False):
            print(f"cvbulk: {refused}", file=sys.stderr)  # why an --via auto run sends bytes
        yield source
