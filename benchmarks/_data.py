"""Seeded synthetic image trees, generated once and cached under the temp folder.

Every file is a function of (kind, seed, index) only, so the same seed gives the same bytes on any
machine, and a tree is generated once per machine: it lives under ``<tmp>/cvbulk-bench-cache/`` in a
folder named by kind, seed, count and generator version, with a ``manifest.json`` written last (a
tree without one is half-made and is generated again).

Kinds:
- ``photos``: what a photo dump looks like (192 JPEG and 24 PNG pictures shared out among the files,
  each file with its own marker segment, so every file has distinct bytes). ~92 % JPEG sized log-normally around 0.25 MB (clipped to
  0.1-3 MB), ~7 % PNG (0.1-1 MB), ~1 % that cvbulk must fix before the service takes them (WebP, TIFF,
  CMYK JPEG, a JPEG wider than 10,240 px). Four tags, one folder each; each tag has its own tint, so a
  model trained on them has something to learn.
- ``tiny``: 64x48 JPEGs of ~2.5 KB, for the 100,000-file memory test (fast to make; the point is the
  number of files, not their size).
- ``resize``: JPEGs 10,600 px wide (over the 10,240 px limit), so every one needs a decode,
  a downscale and a re-encode: the prepare stage's worst case.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import statistics
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["Tree", "TAGS", "make_tree", "pass_through_view", "cache_root"]

GEN_VERSION = 3
MB = 1024 * 1024
TAGS = ("apple", "banana", "cherry", "grape")
_TINTS = {"apple": (200, 40, 40), "banana": (220, 210, 60), "cherry": (120, 0, 60), "grape": (70, 40, 140)}
# bytes per pixel of the tinted noise below at each JPEG quality (measured; good to +-15 %)
_JPEG_BPP = {75: 0.50, 85: 0.65, 92: 0.85}
_NOISE = 0.7  # share of noise in the blend: photo-like entropy, far from a flat colour
_PHOTO_MEDIAN = 0.25 * MB
_PHOTO_SIGMA = 0.75


@dataclass(frozen=True)
class Tree:
    root: Path
    kind: str
    seed: int
    count: int
    total_bytes: int
    formats: dict[str, int]
    needs_fix: int
    size_mb: dict[str, float]  # min / median / mean / p90 / max of the file sizes
    generated_s: float  # 0 when it came from the cache

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "seed": self.seed, "files": self.count,
            "total_mb": round(self.total_bytes / MB, 1), "formats": self.formats,
            "needs_fix": self.needs_fix, "size_mb": self.size_mb,
        }


def cache_root() -> Path:
    return Path(os.environ.get("CVBULK_BENCH_CACHE") or Path(tempfile.gettempdir()) / "cvbulk-bench-cache")


def make_tree(kind: str, count: int, seed: int = 0, *, workers: int | None = None) -> Tree:
    """The tree of ``kind`` with ``count`` files for ``seed``: from the cache, or generated now."""
    if kind not in _PLANS:
        raise ValueError(f"unknown tree kind {kind!r}")
    root = cache_root() / f"{kind}-s{seed}-n{count}-v{GEN_VERSION}"
    manifest = root / "manifest.json"
    if manifest.exists():
        return _tree(root, json.loads(manifest.read_text()), 0.0)
    if root.exists():
        shutil.rmtree(root)
    images = root / "images"
    images.mkdir(parents=True)
    started = time.perf_counter()
    # A plan row per file: (relpath, recipe, format label, needs a fix). Files that share a recipe
    # share its pixels; each still gets unique bytes (a marker segment), as photos of one scene do.
    plan = [_PLANS[kind](random.Random(f"{kind}:{seed}:{i}"), seed, i) for i in range(count)]
    recipes = sorted({row[1] for row in plan})
    n = workers or os.cpu_count() or 1
    if n > 1 and len(recipes) > 16:
        with get_context("fork").Pool(n) as pool:
            rendered = dict(zip(recipes, pool.map(_render, recipes, chunksize=4)))
    else:
        rendered = {r: _render(r) for r in recipes}
    sizes: list[int] = []
    for i, (relpath, recipe, _fmt, _fix) in enumerate(plan):
        data = _unique(rendered[recipe], f"cvbulk-bench {kind} seed={seed} file={i}".encode())
        path = images / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sizes.append(len(data))
    info = {
        "kind": kind, "seed": seed, "count": count, "version": GEN_VERSION,
        "total_bytes": sum(sizes),
        "formats": dict(sorted(Counter(r[2] for r in plan).items())),
        "needs_fix": sum(1 for r in plan if r[3]),
        "distinct_pictures": len(recipes),
        "size_mb": _size_summary(sizes),
    }
    elapsed = time.perf_counter() - started
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, manifest)
    return _tree(root, info, elapsed)


def pass_through_view(tree: Tree) -> Tree:
    """The files of ``tree`` that need no fix (hard links beside it): what "CPU per pass-through image"
    is measured on, so the decode and re-encode of the few that need a fix do not count in it."""
    view = tree.root.with_name("images-pass")
    manifest = view.with_name("manifest-pass.json")
    if not manifest.exists():
        if view.exists():
            shutil.rmtree(view)
        plan = [_PLANS[tree.kind](random.Random(f"{tree.kind}:{tree.seed}:{i}"), tree.seed, i) for i in range(tree.count)]
        kept = [row for row in plan if not row[3]]
        sizes = []
        for relpath, *_ in kept:
            src, dst = tree.root / relpath, view / relpath
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:  # another file system, or no hard links: a copy does as well
                shutil.copyfile(src, dst)
            sizes.append(dst.stat().st_size)
        info = {"kind": tree.kind, "seed": tree.seed, "count": len(kept), "total_bytes": sum(sizes),
                "formats": dict(sorted(Counter(r[2] for r in kept).items())), "needs_fix": 0,
                "size_mb": _size_summary(sizes)}
        manifest.write_text(json.dumps(info, indent=1))
    return _tree(view.parent, json.loads(manifest.read_text()), 0.0, images=view.name)


def _tree(root: Path, info: dict[str, Any], elapsed: float, images: str = "images") -> Tree:
    return Tree(
        root=root / images, kind=info["kind"], seed=info["seed"], count=info["count"],
        total_bytes=info["total_bytes"], formats=info["formats"], needs_fix=info["needs_fix"],
        size_mb=info["size_mb"], generated_s=round(elapsed, 1),
    )


def _size_summary(sizes: list[int]) -> dict[str, float]:
    if not sizes:
        return {}
    s = sorted(sizes)
    return {
        "min": round(s[0] / MB, 3), "median": round(statistics.median(s) / MB, 3),
        "mean": round(statistics.fmean(s) / MB, 3), "p90": round(s[int(0.9 * (len(s) - 1))] / MB, 3),
        "max": round(s[-1] / MB, 3),
    }


def _unique(data: bytes, marker: bytes) -> bytes:
    """The same picture with a marker in it, so that every file has its own bytes (and SHA-256)."""
    if data[:2] == b"\xff\xd8":  # JPEG: a COM segment right after SOI
        return data[:2] + b"\xff\xfe" + (len(marker) + 2).to_bytes(2, "big") + marker + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # PNG: a tEXt chunk right after IHDR
        body = b"Comment\x00" + marker
        chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
        return data[:33] + chunk + data[33:]
    return data  # WebP / TIFF: one file per picture anyway


def _render(recipe: tuple) -> bytes:
    kind, seed, *args = recipe
    rng = random.Random(repr(recipe))
    return _RENDER[kind](rng, *args)


def _noise(rng: random.Random, size: tuple[int, int], tint: tuple[int, int, int]) -> Image.Image:
    w, h = size
    noise = Image.frombytes("RGB", size, rng.randbytes(w * h * 3))
    return Image.blend(Image.new("RGB", size, tint), noise, _NOISE)


def _dims(rng: random.Random, pixels: float) -> tuple[int, int]:
    aspect = rng.choice((4 / 3, 3 / 2, 16 / 9, 1.0))
    w = math.sqrt(pixels * aspect)
    h = w / aspect
    if rng.random() < 0.25:  # portrait
        w, h = h, w
    return max(256, int(w)), max(256, int(h))


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# -- plans: which picture each file gets -----------------------------------------------------------

_JPEG_PICTURES_PER_TAG = 48
_PNG_PICTURES_PER_TAG = 6


def _plan_photos(rng: random.Random, seed: int, index: int) -> tuple[str, tuple, str, bool]:
    tag = TAGS[index % len(TAGS)]
    roll = rng.random()
    name = f"{tag}/{index:06d}"
    if roll < 0.01:  # a few the service would refuse as they are: one picture each
        which = ("webp", "tiff", "cmyk", "wide")[index % 4]
        ext = {"webp": ".webp", "tiff": ".tif"}.get(which, ".jpg")
        label = {"webp": "WEBP", "tiff": "TIFF", "cmyk": "JPEG-CMYK", "wide": "JPEG-wide"}[which]
        return name + ext, (which, seed, tag, index), label, True
    if roll < 0.08:
        return name + ".png", ("png", seed, tag, rng.randrange(_PNG_PICTURES_PER_TAG)), "PNG", False
    return name + ".jpg", ("jpeg", seed, tag, rng.randrange(_JPEG_PICTURES_PER_TAG)), "JPEG", False


def _plan_tiny(rng: random.Random, seed: int, index: int) -> tuple[str, tuple, str, bool]:
    tag = TAGS[index % len(TAGS)]
    return f"{tag}/{index // 4000:03d}/{index:06d}.jpg", ("tiny", seed, tag, index % 64), "JPEG", False


def _plan_resize(rng: random.Random, seed: int, index: int) -> tuple[str, tuple, str, bool]:
    tag = TAGS[index % len(TAGS)]
    return f"{tag}/{index:06d}.jpg", ("resize", seed, tag, index), "JPEG-wide", True


_PLANS = {"photos": _plan_photos, "tiny": _plan_tiny, "resize": _plan_resize}


# -- pictures ---------------------------------------------------------------------------------------


def _jpeg(rng: random.Random, tag: str, _b: int) -> bytes:
    target = min(3 * MB, max(0.1 * MB, rng.lognormvariate(math.log(_PHOTO_MEDIAN), _PHOTO_SIGMA)))
    quality = rng.choice(tuple(_JPEG_BPP))
    img = _noise(rng, _dims(rng, target / _JPEG_BPP[quality]), _TINTS[tag])
    return _encode(img, "JPEG", quality=quality)


def _png(rng: random.Random, tag: str, _b: int) -> bytes:
    target = rng.uniform(0.1, 1.0) * MB
    return _encode(_noise(rng, _dims(rng, target / 2.2), _TINTS[tag]), "PNG", compress_level=1)


def _webp(rng: random.Random, tag: str, _i: int) -> bytes:
    return _encode(_noise(rng, _dims(rng, 300_000), _TINTS[tag]), "WEBP", quality=80)


def _tiff(rng: random.Random, tag: str, _i: int) -> bytes:
    return _encode(_noise(rng, _dims(rng, 120_000), _TINTS[tag]), "TIFF")


def _cmyk(rng: random.Random, tag: str, _i: int) -> bytes:
    return _encode(_noise(rng, _dims(rng, 400_000), _TINTS[tag]).convert("CMYK"), "JPEG", quality=85)


def _wide(rng: random.Random, tag: str, _i: int) -> bytes:
    img = Image.new("RGB", (10_600, 500), _TINTS[tag])  # too wide: downscaled to 10,240
    img.paste(_noise(rng, (1000, 500), _TINTS[tag]), (rng.randrange(9600), 0))
    return _encode(img, "JPEG", quality=85)


def _tiny(rng: random.Random, tag: str, _b: int) -> bytes:
    return _encode(_noise(rng, (64, 48), _TINTS[tag]), "JPEG", quality=75)


def _resize(rng: random.Random, tag: str, _i: int) -> bytes:
    w, h = 10_600, 700
    img = _noise(rng, (w // 4, h // 4), _TINTS[tag]).resize((w, h), Image.Resampling.BILINEAR)
    return _encode(img, "JPEG", quality=85)


_RENDER = {
    "jpeg": _jpeg, "png": _png, "webp": _webp, "tiff": _tiff, "cmyk": _cmyk, "wide": _wide,
    "tiny": _tiny, "resize": _resize,
}
