"""Blob listing memory and header-read bytes, on a real Azurite.

    python -m benchmarks.blob_listing                    # 1,000 and 100,000 blobs (about 2-4 min on 2 cores)
    python -m benchmarks.blob_listing --counts 1000 20000 --json /tmp/blob.json

1. Starts Azurite (in memory, a free loopback port) and fills one container per count with tiny blobs
   (``Tag<k>/img<i>.jpg``, 16 bytes), 64 concurrent uploads.
2. Lists each container in a child process (cvbulk.storage's lazy paged listing, 1,000 per page, every entry
   counted and its tag taken) and reads the child's peak RSS (``VmHWM``) when it is done. Memory is flat when
   the peak for the large container is within 1.2x of the small one's.
3. Uploads the sample images (examples/samples) and runs the upload's header check on each (8 KB first, more
   only when the header goes on): bytes read and requests per image (at most 64 KB of an image, whatever its size).

The connection string goes to the child in its environment, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "samples"
TINY = b"\xff\xd8\xff\xe0tiny-blob-bytes"  # 16 bytes
FLAT_RATIO = 1.2


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def _fill(connection_string: str, container: str, count: int) -> float:
    """Create ``container`` with ``count`` tiny blobs. Plain aiohttp PUTs under an account SAS: the SDK's
    per-request work would make the client, not Azurite, the slow side of a 100,000-blob fill."""
    from datetime import datetime, timedelta, timezone

    import aiohttp
    import anyio
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
    from azure.storage.blob.aio import BlobServiceClient

    from cvbulk.storage import parse_connection_string

    settings = parse_connection_string(connection_string)
    token = generate_account_sas(
        settings.account_name,
        settings.account_key or "",
        resource_types=ResourceTypes(object=True),
        permission=AccountSasPermissions(write=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=2),
    )
    started = time.perf_counter()
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        await service.get_container_client(container).create_container()
    headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "image/jpeg"}
    base = f"{settings.account_url}/{container}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        send, receive = anyio.create_memory_object_stream[int](max_buffer_size=256)

        async def worker() -> None:
            async with receive.clone() as numbers:
                async for i in numbers:
                    url = f"{base}/Tag{i % 10}/img{i:07d}.jpg?{token}"
                    for attempt in range(4):  # a loaded Azurite resets a kept-alive connection now and then
                        try:
                            async with session.put(url, data=TINY, headers=headers) as response:
                                if response.status != 201:
                                    raise RuntimeError(f"fill: HTTP {response.status}")
                            break
                        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                            if attempt == 3:
                                raise
                            await anyio.sleep(0.2)

        async with anyio.create_task_group() as tg:
            for _ in range(64):
                tg.start_soon(worker)
            async with send:
                for i in range(count):
                    await send.send(i)
            receive.close()
    return time.perf_counter() - started


async def _list_child(container: str) -> dict[str, float]:
    from cvbulk.storage import open_source

    environ = {"AZURE_STORAGE_CONNECTION_STRING": os.environ["BENCH_AZURE_STORAGE_CONNECTION_STRING"]}
    rss_before = _peak_rss_kb()
    started = time.perf_counter()
    count = 0
    tags: set[str | None] = set()
    async with open_source(f"az://{container}", environ=environ) as source:
        async for page in source.pages(page_size=1000):
            for entry in page:
                count += 1
                tags.add(entry.tag)
        pages = source.stats.pages
    seconds = time.perf_counter() - started
    return {
        "listed": count,
        "pages": pages,
        "tags": len(tags),
        "seconds": round(seconds, 2),
        "entries_per_s": round(count / seconds),
        "rss_before_kb": rss_before,
        "peak_rss_kb": _peak_rss_kb(),
    }


async def _header_reads(connection_string: str, container: str) -> dict[str, float]:
    """The upload's header check (``BlobFolder.aprepare``: 8 KB first, more only for a longer header) on the
    sample images: bytes and requests per image."""
    from azure.storage.blob.aio import BlobServiceClient

    from cvbulk.pipeline.prepare import TRAINING_LIMITS
    from cvbulk.pipeline.sources import BlobFolder
    from cvbulk.storage import open_source

    images = sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        await client.create_container()
        for path in images:
            await client.upload_blob(path.relative_to(SAMPLES).as_posix(), path.read_bytes(), overwrite=True)
    total_size = sum(p.stat().st_size for p in images)
    async with open_source(f"az://{container}", environ={"AZURE_STORAGE_CONNECTION_STRING": connection_string}) as src:
        folder = BlobFolder(src, via="url")
        requests_before = src.stats.requests
        largest, went = 0, []
        async for item in folder.entries():
            before = src.stats.header_bytes
            result = await folder.aprepare(item, TRAINING_LIMITS, ())
            largest = max(largest, src.stats.header_bytes - before)
            went.append(getattr(result, "via", None))
        reads = src.stats.header_reads
        return {
            "images": reads,
            "by_url": went.count("url"),
            "mean_image_bytes": round(total_size / reads),
            "header_bytes_per_image_mean": round(src.stats.header_bytes / reads),
            "header_bytes_per_image_max": largest,
            "requests_per_image": round((src.stats.requests - requests_before - src.stats.pages) / reads, 2),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blob_listing", description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child-list", metavar="CONTAINER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import anyio

    if args.child_list:
        print(json.dumps(anyio.run(_list_child, args.child_list)))
        return 0

    sys.path.insert(0, str(ROOT))
    from tests._azurite import start_azurite

    location = Path(tempfile.mkdtemp(prefix="cvbulk-bench-azurite-"))
    server = start_azurite(location, in_memory=True)
    results: dict[str, object] = {"listing": {}}
    try:
        env = {**os.environ, "BENCH_AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
        for count in args.counts:
            container = f"list{count}"
            fill_s = anyio.run(_fill, server.connection_string, container, count)
            print(f"filled {container}: {count} blobs in {fill_s:.1f} s ({count / fill_s:.0f}/s)", file=sys.stderr)
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.blob_listing", "--child-list", container],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=True,
            )
            row = json.loads(child.stdout.strip().splitlines()[-1])
            row["fill_seconds"] = round(fill_s, 1)
            results["listing"][str(count)] = row  # type: ignore[index]
            print(f"listed {count}: {row}", file=sys.stderr)
        peaks = [results["listing"][str(c)]["peak_rss_kb"] for c in args.counts]  # type: ignore[index]
        ratio = max(peaks) / min(peaks)
        results["peak_rss_ratio"] = round(ratio, 3)
        results["flat"] = ratio <= FLAT_RATIO
        results["header_check"] = anyio.run(_header_reads, server.connection_string, "headers")
    finally:
        server.stop()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if results["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
