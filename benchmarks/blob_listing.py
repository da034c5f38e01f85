"""Blob listing memory and header-read bytes, on a real Azurite.

    python -m benchmarks.blob_listing                    # 1,000 and 100,000 blobs (about 2 min on 2 cores)
    python -m benchmarks.blob_listing --counts 1000 20000 100000 --json /tmp/blob.json
    python -m benchmarks.blob_listing --fill put --counts 1000 5000   # every blob a PUT: slow past ~20,000

1. Starts Azurite (its data in a temporary folder, a free loopback port) and fills one container per count with
   tiny blobs (``Tag<i mod 10>/img<i>.jpg``, 19 bytes each). ``--fill seed`` (the default): blob 0 of each
   container is a PUT; then Azurite is stopped, the other blobs are added to Azurite's own metadata database
   (the LokiJS file it reloads at start, written with Azurite's own LokiJS) as copies of blob 0's record, each
   with its own name, ETag and time and the same 19 bytes, and Azurite is started again on that folder.
   ``--fill put``: every blob is a PUT (64 at a time). Why seed: each PUT costs Azurite CPU in proportion to the
   blobs already in the account (its LokiJS look-up of the blob starts with the account name, which every blob
   matches, and an account SAS adds a second such look-up): about 0.5 ms more per 1,000 blobs, so 100,000 PUTs
   take its one thread most of an hour.
2. Lists each container in a child process the way ``cvbulk upload az://<container>`` does
   (``open_image_source``: the container check; ``BlobFolder.entries``: the lazy paged listing, 1,000 per page,
   the run's only one; each blob's tag from the virtual folders' ``labels_for``, made as the listing finds it) and reads the child's
   peak RSS (``VmHWM``) when it is done. Memory is flat when the peak for the largest container is within 1.2x
   of the smallest one's. Azurite's CPU seconds over each listing are reported beside it.
3. Uploads the sample images (examples/samples) and runs the upload's header check on each (8 KB first, more
   only when the header goes on): bytes read and requests per image (at most 64 KB of an image, whatever its size).

The connection string goes to the child in its environment, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks._machine import load_average
from benchmarks._proc import proc_cpu_seconds

if TYPE_CHECKING:
    from tests._azurite import Azurite

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "samples"
TINY = b"\xff\xd8\xff\xe0tiny-blob-bytes"  # 19 bytes
FLAT_RATIO = 1.2
FILL_CONCURRENCY = 64
AZURITE_DIR = ROOT / "node_modules" / "azurite"
LOKI_DB = "__azurite_db_blob__.json"  # Azurite's metadata database in its --location folder

# Adds blobs 1..count-1 to each container of a stopped Azurite's metadata database, as copies of blob 0's record
# (what Azurite wrote for its PUT): own name, ETag (Azurite's "0x<hex>" form, each one distinct) and times 1 ms
# apart; the same content (the extent blob 0's bytes are in, its MD5, size, type). One batch insert per
# container: LokiJS rebuilds its indices once, where a PUT each would cost a scan of the account each.
_SEED_JS = r"""
const [dbPath, specText] = process.argv.slice(2);
const Loki = require(require.resolve("lokijs", { paths: [process.env.AZURITE_DIR] }));
const nameOf = (i) => `Tag${i % 10}/img${String(i).padStart(7, "0")}.jpg`;
const db = new Loki(dbPath);
db.loadDatabase({}, (err) => {
  if (err) { console.error(String(err)); process.exit(2); }
  const blobs = db.getCollection("$BLOBS_COLLECTION$");
  const seconds = {};
  for (const { container, count } of JSON.parse(specText)) {
    const started = Date.now();
    const first = blobs.findOne({ containerName: container, name: nameOf(0) });
    if (!first) { console.error(`${container}: blob 0 is not in ${dbPath}`); process.exit(2); }
    const base = JSON.stringify({ ...first, $loki: undefined, meta: undefined });
    const t0 = Date.parse(first.properties.lastModified);
    const docs = [];
    for (let i = 1; i < count; i++) {
      const doc = JSON.parse(base);
      doc.name = nameOf(i);
      const when = new Date(t0 + i).toISOString();
      doc.properties.creationTime = doc.properties.lastModified = doc.properties.accessTierChangeTime = when;
      doc.properties.etag = `"0x${(BigInt(t0) * 80000n + BigInt(i) * 80001n).toString(16).toUpperCase()}"`;
      docs.push(doc);
    }
    if (docs.length) blobs.insert(docs, true);
    seconds[container] = (Date.now() - started) / 1000;
  }
  db.saveDatabase((err2) => {
    if (err2) { console.error(String(err2)); process.exit(2); }
    console.log(JSON.stringify(seconds));
  });
});
"""


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _blob_name(i: int) -> str:
    return f"Tag{i % 10}/img{i:07d}.jpg"


async def _put(connection_string: str, container: str, count: int) -> float:
    """Create ``container`` with blobs 0..count-1, each a PUT. Plain aiohttp PUTs under an account SAS: the SDK's
    per-request work would make the client, not Azurite, the slow side of a large fill."""
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
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=FILL_CONCURRENCY)) as session:
        send, receive = anyio.create_memory_object_stream[int](max_buffer_size=256)

        async def worker() -> None:
            async with receive.clone() as numbers:
                async for i in numbers:
                    url = f"{base}/{_blob_name(i)}?{token}"
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
            for _ in range(FILL_CONCURRENCY):
                tg.start_soon(worker)
            async with send:
                for i in range(count):
                    await send.send(i)
            receive.close()
    return time.perf_counter() - started


def _seed(location: Path, counts: list[int]) -> dict[str, float]:
    """Blobs 1..count-1 of each container into a stopped Azurite's database (see ``_SEED_JS``): seconds each."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH (Azurite needs it too)")
    spec = json.dumps([{"container": f"list{c}", "count": c} for c in counts])
    done = subprocess.run(
        [node, "-", str(location / LOKI_DB), spec],
        input=_SEED_JS,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "AZURITE_DIR": str(AZURITE_DIR)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding Azurite's database failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _check_seeded(connection_string: str, counts: list[int]) -> None:
    """Azurite serves a seeded blob like one it was sent: its last blob has blob 0's bytes and its own ETag."""
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(connection_string) as service:
        for count in counts:
            container = service.get_container_client(f"list{count}")
            first = await container.get_blob_client(_blob_name(0)).get_blob_properties()
            last = container.get_blob_client(_blob_name(count - 1))
            data = await (await last.download_blob()).readall()
            props = await last.get_blob_properties()
            if data != TINY or (count > 1 and props.etag == first.etag):
                raise RuntimeError(f"list{count}: a seeded blob does not read back as written")


def _settle(pid: int, *, quiet_s: float = 0.1, limit_s: float = 180.0) -> float:
    """Wait until Azurite is idle (at start it walks every blob once, its extent garbage collector): seconds."""
    started = time.monotonic()
    before = proc_cpu_seconds(pid)
    while time.monotonic() - started < limit_s:
        time.sleep(1.0)  # polling a server's CPU counter, not waiting for a result
        now = proc_cpu_seconds(pid)
        if now - before < quiet_s:
            break
        before = now
    return time.monotonic() - started


async def _list_child(container: str) -> dict[str, object]:
    """List ``az://<container>`` as ``cvbulk upload`` does: the checked source, every blob from the lazy paged
    listing, and its tag from the folders label source."""
    from cvbulk.pipeline.labels import Labels
    from cvbulk.pipeline.sources import BlobFolder, open_image_source

    rss_before = _peak_rss_kb()
    started, cpu_started = time.perf_counter(), time.process_time()
    count = 0
    tagged: Counter[str] = Counter()
    async with open_image_source(f"az://{container}", via="url") as images:
        assert isinstance(images, BlobFolder)
        opened = time.perf_counter() - started  # the container check
        labels = images.open_labels("folders", Path.cwd())
        async for item in images.entries():
            count += 1
            found = labels.labels_for(item.relpath)
            if isinstance(found, Labels):
                for tag in found.tags:
                    tagged[tag] += 1
        stats = images.storage.stats
        pages, requests = stats.pages, stats.requests
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "listed": count,
        "pages": pages,
        "list_requests": requests,
        "tags": len(tagged),  # the virtual folders the one listing found
        "tagged": sum(tagged.values()),
        "seconds": round(seconds, 2),
        "open_seconds": round(opened, 2),
        "entries_per_s": round(count / seconds),
        "client_cpu_s": round(cpu, 2),
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


def _fill(server: Azurite, location: Path, counts: list[int], how: str) -> tuple[Azurite, dict[str, object]]:
    """Every ``list<count>`` container filled; returns the Azurite that serves them (a new one after a seed)."""
    import anyio

    from tests._azurite import start_azurite

    fill: dict[str, object] = {
        "method": how,
        "put_concurrency": FILL_CONCURRENCY,
        "load_average_before": load_average(),
    }
    started = time.perf_counter()
    put_s = {}
    for count in counts:
        container = f"list{count}"
        n = 1 if how == "seed" else count
        seconds = anyio.run(_put, server.connection_string, container, n)
        put_s[str(count)] = round(seconds, 2)
        print(f"put {container}: {n} blobs in {seconds:.1f} s ({n / seconds:.0f}/s)", file=sys.stderr)
    fill["put_seconds"] = put_s
    if how == "seed":
        server.stop()  # Azurite writes its database as it stops
        seed_s = _seed(location, counts)
        fill["seed_seconds"] = {c.removeprefix("list"): round(s, 2) for c, s in seed_s.items()}
        restarted = time.perf_counter()
        server = start_azurite(location)
        fill["restart_seconds"] = round(time.perf_counter() - restarted, 2)
        fill["settle_seconds"] = round(_settle(server.process.pid), 1)
        anyio.run(_check_seeded, server.connection_string, counts)
        print(f"seeded {fill['seed_seconds']}; Azurite up again in {fill['restart_seconds']} s", file=sys.stderr)
    fill["seconds"] = round(time.perf_counter() - started, 1)
    fill["blobs_per_s"] = round(sum(counts) / (time.perf_counter() - started))
    return server, fill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blob_listing", description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--fill", choices=("seed", "put"), default="seed", help="how the containers are filled")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child-list", metavar="CONTAINER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import anyio

    if args.child_list:
        print(json.dumps(anyio.run(_list_child, args.child_list)))
        return 0

    sys.path.insert(0, str(ROOT))
    from tests._azurite import start_azurite

    counts = sorted(set(args.counts))
    location = Path(tempfile.mkdtemp(prefix="cvbulk-bench-azurite-"))
    server = start_azurite(location)  # on disk: a seed rewrites the folder's database between two starts
    results: dict[str, object] = {"counts": counts, "listing": {}}
    try:
        server, results["fill"] = _fill(server, location, counts, args.fill)
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
        for count in counts:
            container = f"list{count}"
            load = load_average()
            azurite_cpu = proc_cpu_seconds(server.process.pid)
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.blob_listing", "--child-list", container],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
            )
            row = json.loads(child.stdout.strip().splitlines()[-1])
            if row["listed"] != count:
                raise RuntimeError(f"{container}: listed {row['listed']} blobs, not {count}")
            row["azurite_cpu_s"] = round(proc_cpu_seconds(server.process.pid) - azurite_cpu, 2)
            row["load_average_before"] = load
            results["listing"][str(count)] = row  # type: ignore[index]
            print(f"listed {count}: {row}", file=sys.stderr)
        peaks = [results["listing"][str(c)]["peak_rss_kb"] for c in counts]  # type: ignore[index]
        ratio = max(peaks) / min(peaks)
        results["peak_rss_ratio"] = round(ratio, 3)
        results["flat"] = ratio <= FLAT_RATIO
        results["header_check"] = anyio.run(_header_reads, server.connection_string, "headers")
        results["load_average_after"] = load_average()
    finally:
        server.stop()
        shutil.rmtree(location, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if results["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
