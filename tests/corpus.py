"""Generated test images and the bad-input corpus (no committed binaries).

Other areas' tests import this module::

    from tests.corpus import make_jpeg, make_png, make_tree, make_bad_corpus, vanish_after_scan

* ``make_jpeg`` / ``make_png``: one small image of distinct, deterministic content per ``seed``.
* ``make_tree(root, tags={"a": 3, "b": 2})``: a folder per tag, distinct images (the service would call
  identical ones duplicates); each tag has its own tint so a classifier can tell them apart.
* ``make_bad_corpus(root)``: every awkward file of issue 9 under the tag folder ``bad/``, and the outcome
  each should end with: ``uploaded`` (sent untouched), ``fixed`` (sent after a fix), ``rejected`` (with a
  reason), ``skipped`` (reported by the scan: symlink loop, broken link, unreadable folder) or
  ``duplicate`` (the second copy of the same bytes, as the service reports it).

Two entries need care:

* ``bad/locked`` is chmod 000. Running as root, chmod blocks nothing: then the mapping expects the file
  inside (``bad/locked/inside.jpg``) to be uploaded instead of the folder being skipped.
  :func:`reads_blocked` tells which case holds.
* ``bad/vanishing.jpg`` is expected ``rejected`` because it is deleted between scan and read. In-process
  tests get that with ``with vanish_after_scan(root): ...`` (the scan deletes it right after stat-ing it).
  A test that runs cvbulk in a subprocess cannot: pass ``include_vanishing=False``.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

__all__ = [
    "make_image",
    "make_jpeg",
    "make_png",
    "make_tree",
    "make_bad_corpus",
    "make_bomb_png",
    "reads_blocked",
    "restore_permissions",
    "vanish_after_scan",
    "BAD_TAG",
    "VANISHING",
    "LOCKED_DIR",
    "LOCKED_FILE",
]

BAD_TAG = "bad"
VANISHING = f"{BAD_TAG}/vanishing.jpg"
LOCKED_DIR = f"{BAD_TAG}/locked"
LOCKED_FILE = f"{LOCKED_DIR}/inside.jpg"

_TINTS = [(200, 60, 60), (60, 160, 60), (60, 80, 200), (200, 180, 40), (150, 60, 180), (40, 170, 170)]


def make_image(size: tuple[int, int] = (64, 64), seed: int = 0, mode: str = "RGB",
               tint: tuple[int, int, int] | None = None) -> Image.Image:
    """Smooth random blobs: distinct per seed, cheap to make, compresses like a photo (not like noise)."""
    rnd = random.Random(seed)
    small = Image.frombytes("RGB", (6, 6), rnd.randbytes(6 * 6 * 3))
    img = small.resize(size, Image.Resampling.BILINEAR)
    if tint is not None:
        img = Image.blend(img, Image.new("RGB", size, tint), 0.5)
    return img if mode == "RGB" else img.convert(mode)


def _write(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def make_jpeg(path: str | os.PathLike[str], size: tuple[int, int] = (64, 64), seed: int = 0, quality: int = 90,
              *, mode: str = "RGB", orientation: int | None = None,
              tint: tuple[int, int, int] | None = None) -> Path:
    """Write a JPEG; ``orientation`` sets the EXIF Orientation tag (6 = shown rotated 90 degrees)."""
    p = _write(path)
    img = make_image(size, seed, "RGB", tint)
    if mode != "RGB":
        img = img.convert(mode)
    kw: dict[str, object] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(p, "JPEG", quality=quality, **kw)
    return p


def make_png(path: str | os.PathLike[str], size: tuple[int, int] = (64, 64), seed: int = 0,
             *, mode: str = "RGB", tint: tuple[int, int, int] | None = None) -> Path:
    """Write a PNG in ``mode`` (RGB, RGBA with a real alpha gradient, L, P, I;16 ...)."""
    p = _write(path)
    img = make_image(size, seed, "RGB", tint)
    if mode == "RGBA":
        img.putalpha(Image.linear_gradient("L").resize(size))
    elif mode == "I;16":
        img = img.convert("L").point(lambda v: v * 257, "I").convert("I;16")  # type: ignore[arg-type]
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(p, "PNG")
    return p


def make_tree(root: str | os.PathLike[str], tags: dict[str, int] | None = None, *, size: tuple[int, int] = (64, 64),
              fmt: str = "jpg", seed: int = 0, nested: bool = False) -> dict[str, str]:
    """A folder per tag with distinct images; returns relpath -> tag. ``nested`` puts half in a sub-folder."""
    tags = {"a": 3, "b": 2} if tags is None else tags
    out: dict[str, str] = {}
    n = seed * 1_000_003
    for t_index, (tag, count) in enumerate(sorted(tags.items())):
        tint = _TINTS[t_index % len(_TINTS)]
        for i in range(count):
            n += 1
            sub = "sub/" if nested and i % 2 else ""
            rel = f"{tag}/{sub}{tag}_{i:04d}.{fmt}"
            if fmt == "png":
                make_png(Path(root) / rel, size, n, tint=tint)
            else:
                make_jpeg(Path(root) / rel, size, n, tint=tint)
            out[rel] = tag
    return out


def make_bomb_png(path: str | os.PathLike[str], size: tuple[int, int] = (100_000, 100_000)) -> Path:
    """A 100-byte PNG whose header claims ``size``: decoding it would need 30 GB, the header costs nothing."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", size[0], size[1], 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)  # a sliver of the rows; the rest never exists
    p = _write(path)
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return p


def reads_blocked(folder: str | os.PathLike[str]) -> bool:
    """Whether a chmod-000 folder really refuses reads here (it does not for root)."""
    try:
        os.listdir(folder)
    except PermissionError:
        return True
    return False


def restore_permissions(root: str | os.PathLike[str]) -> None:
    """Undo the corpus's chmod 000 so the tree can be removed."""
    locked = Path(root) / LOCKED_DIR
    if locked.exists():
        os.chmod(locked, 0o755)


def make_bad_corpus(root: str | os.PathLike[str], *, include_vanishing: bool = True,
                    include_unreadable: bool = True, include_big: bool = True) -> dict[str, str]:
    """Write the bad-input corpus under ``root/bad`` and return relpath -> expected outcome.

    ``include_big=False`` leaves out the 12 MB png (the slowest file to make and to fix).
    """
    root = Path(root)
    d = root / BAD_TAG
    d.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def add(name: str, outcome: str) -> Path:
        expected[f"{BAD_TAG}/{name}"] = outcome
        return d / name

    add("empty.jpg", "rejected").write_bytes(b"")
    whole = io.BytesIO()
    make_image((128, 96), 9001).save(whole, "JPEG", quality=90)
    add("truncated.jpg", "rejected").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    add("text.jpg", "rejected").write_text("this is not an image, just text named .jpg\n", encoding="utf-8")
    make_png(add("png_named.jpg", "uploaded"), (64, 48), 9002)
    make_png(add("gray16.png", "fixed"), (64, 48), 9003, mode="I;16")
    pal = make_image((64, 48), 9004).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(add("palette_transparent.png", "uploaded"), "PNG", transparency=0)
    make_png(add("rgba.png", "uploaded"), (64, 48), 9005, mode="RGBA")
    make_jpeg(add("cmyk.jpg", "fixed"), (64, 48), 9006, mode="CMYK")
    frames = [make_image((48, 48), 9007 + i).convert("P") for i in range(3)]
    frames[0].save(add("animated.gif", "uploaded"), "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    make_image((64, 48), 9010).save(add("photo.webp", "fixed"), "WEBP", quality=80)
    make_image((64, 48), 9011).save(add("photo.tiff", "fixed"), "TIFF")
    make_image((64, 48), 9012).save(add("photo.bmp", "uploaded"), "BMP")
    make_png(add("tiny_10x10.png", "uploaded"), (10, 10), 9013)
    make_png(add("wide_20000x300.png", "rejected"), (20000, 300), 9014)
    if include_big:
        # Noise does not compress: 2048x2048 RGB is 12 MB as PNG, twice the training limit.
        noise = Image.frombytes("RGB", (2048, 2048), random.Random(9015).randbytes(2048 * 2048 * 3))
        noise.save(add("big_12mb.png", "fixed"), "PNG", compress_level=1)
    make_bomb_png(add("bomb.png", "rejected"))
    make_jpeg(add("exif_rotated.jpg", "uploaded"), (64, 48), 9016, orientation=6)
    make_jpeg(add("dup_a.jpg", "uploaded"), (64, 48), 9017)
    add("dup_b.jpg", "duplicate").write_bytes((d / "dup_a.jpg").read_bytes())
    make_jpeg(add("fleur été 1.jpg", "uploaded"), (64, 48), 9018)
    make_png(add("日本 写真.png", "uploaded"), (64, 48), 9019)
    os.symlink(".", add("loop", "skipped"), target_is_directory=True)  # bad/loop -> bad: a cycle
    os.symlink("no-such-target.jpg", add("broken_link.jpg", "skipped"))
    if include_vanishing:
        make_jpeg(add("vanishing.jpg", "rejected"), (64, 48), 9020)
    if include_unreadable:
        locked = root / LOCKED_DIR
        make_jpeg(locked / "inside.jpg", (64, 48), 9021)
        os.chmod(locked, 0)
        if reads_blocked(locked):
            expected[LOCKED_DIR] = "skipped"
        else:
            expected[LOCKED_FILE] = "uploaded"  # running as root: chmod 000 blocks nothing
    return expected


@contextlib.contextmanager
def vanish_after_scan(root: str | os.PathLike[str], relpaths: tuple[str, ...] = (VANISHING,)) -> Iterator[None]:
    """While active, the scan deletes each of ``relpaths`` right after stat-ing it (so a later read fails).

    Works for scans in this process (``scan_tree`` / ``aiter_scan`` and anything that calls them).
    """
    from cvbulk.pipeline import scan as scan_mod

    real = scan_mod.ScanEntry
    targets = set(relpaths)

    def entry(path: Path, relpath: str, size: int, mtime_ns: int) -> object:
        made = real(path, relpath, size, mtime_ns)
        if relpath in targets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return made

    scan_mod.ScanEntry = entry  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        scan_mod.ScanEntry = real  # type: ignore[misc]
