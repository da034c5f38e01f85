"""Timing of training and GetIterationPerformance on a 400-image detection project (not a test).

    .venv/bin/python -m tests.emulator.bench_iteration_performance [N_IMAGES]

Trains the project twice (the second with forceTrain), then times GetIterationPerformance (twice,
then at another threshold and overlapThreshold) and GetImagePerformances on the second iteration, and
GetIterationPerformance again as for an iteration of an older emulator (its evaluation removed).
Prints wall seconds and the process CPU seconds of each step, with the load average beside them.
"""

from __future__ import annotations

import base64
import io
import os
import random
import sqlite3
import sys
import time

import requests
from PIL import Image, ImageDraw

from cvbulk.emulator import EmulatorConfig, EmulatorThread
from cvbulk.emulator._evaluation import evaluation_path


def scene(i: int) -> tuple[bytes, list[dict]]:
    """A noisy 320x240 scene with one or two coloured objects (tag a: red box, tag b: blue ellipse)."""
    rnd = random.Random(i)
    img = Image.frombytes("RGB", (80, 60), rnd.randbytes(80 * 60 * 3)).resize((320, 240))
    draw = ImageDraw.Draw(img)
    regions = []
    for k in range(1 + i % 2):
        w, h = rnd.randint(50, 120), rnd.randint(40, 100)
        x, y = rnd.randint(0, 320 - w), rnd.randint(0, 240 - h)
        tag = "a" if (i + k) % 2 == 0 else "b"
        if tag == "a":
            draw.rectangle((x, y, x + w, y + h), fill=(220, 30, 30))
        else:
            draw.ellipse((x, y, x + w, y + h), fill=(30, 30, 220))
        regions.append({"tag": tag, "left": x / 320, "top": y / 240, "width": w / 320, "height": h / 240})
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue(), regions


def _timed(label: str, fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    print(f"{label:48s} wall {time.perf_counter() - wall:7.2f} s  cpu {time.process_time() - cpu:7.2f} s  "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    return result


def main(n: int) -> None:
    with EmulatorThread(EmulatorConfig()) as emu:
        s = requests.Session()
        s.headers["Training-Key"] = emu.training_key
        t = f"{emu.endpoint}/customvision/v3.3/training"

        def call(method: str, path: str, **kw):
            r = s.request(method, t + path, timeout=900, **kw)
            assert r.status_code == 200, (r.status_code, r.text[:300])
            return r.json()

        domain = next(d["id"] for d in call("GET", "/domains") if d["type"] == "ObjectDetection")
        pid = call("POST", "/projects", params={"name": "od400", "domainId": domain})["id"]
        tags = {name: call("POST", f"/projects/{pid}/tags", params={"name": name})["id"] for name in "ab"}
        images = [scene(i) for i in range(n)]
        for start in range(0, n, 64):
            batch = [{"name": f"{i}.jpg", "contents": base64.b64encode(data).decode(),
                      "regions": [{"tagId": tags[r["tag"]], **{k: r[k] for k in ("left", "top", "width", "height")}}
                                  for r in regions]}
                     for i, (data, regions) in enumerate(images[start:start + 64], start)]
            got = call("POST", f"/projects/{pid}/images/files", json={"images": batch})
            assert got["isBatchSuccessful"], got

        def train(force: bool) -> dict:
            it = call("POST", f"/projects/{pid}/train", params={"forceTrain": str(force).lower()})
            while it["status"] == "Training":
                time.sleep(0.1)
                it = call("GET", f"/projects/{pid}/iterations/{it['id']}")
            assert it["status"] == "Completed", it
            return it

        _timed("train 1", lambda: train(False))
        it = _timed("train 2 (forceTrain)", lambda: train(True))
        url = f"/projects/{pid}/iterations/{it['id']}/performance"
        p = _timed("GetIterationPerformance (first)", lambda: call("GET", url))
        print(f"  precision {p['precision']:.3f} recall {p['recall']:.3f} mAP {p['averagePrecision']:.3f}")
        _timed("GetIterationPerformance (again)", lambda: call("GET", url))
        p = _timed("GetIterationPerformance threshold=0.3 overlap=0.5",
                   lambda: call("GET", url, params={"threshold": 0.3, "overlapThreshold": 0.5}))
        print(f"  precision {p['precision']:.3f} recall {p['recall']:.3f} mAP {p['averagePrecision']:.3f}")
        got = _timed("GetImagePerformances", lambda: call("GET", url + "/images", params={"take": 256}))
        print(f"  {len(got)} held-out images")
        # as an iteration trained by an older emulator (no stored evaluation): computed on first request
        evaluation_path(emu.data_dir / "models", it["id"]).unlink()
        db = sqlite3.connect(emu.data_dir / "emulator.sqlite3")
        with db:
            db.execute("UPDATE iterations SET performance=NULL WHERE id=?", (it["id"],))
        db.close()
        _timed("GetIterationPerformance (older data folder)", lambda: call("GET", url))
        _timed("GetIterationPerformance (older data folder, again)", lambda: call("GET", url))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
