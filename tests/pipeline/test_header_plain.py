"""The header check's reading of plain JPEG and PNG headers without Pillow: "pass" only where Pillow says so."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from cvbulk.pipeline import _header
from cvbulk.pipeline._header import _plain_within, check_head
from cvbulk.pipeline.prepare import PREDICTION_LIMITS, TRAINING_LIMITS


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _corpus() -> dict[str, bytes]:
    rgb = Image.new("RGB", (120, 80), (10, 200, 30))
    cases = {
        "jpeg-rgb": _save(rgb, "JPEG"),
        "jpeg-gray": _save(rgb.convert("L"), "JPEG"),
        "jpeg-progressive": _save(rgb, "JPEG", progressive=True),
        "jpeg-cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "jpeg-exif": _save(rgb, "JPEG", exif=Image.Exif()),
        "jpeg-wide": _save(Image.new("RGB", (2600, 100)), "JPEG"),  # aspect 26:1: over the limit
        "jpeg-big-side": _save(Image.new("L", (10_300, 8)), "JPEG"),
        "png-rgb": _save(rgb, "PNG"),
        "png-rgba": _save(rgb.convert("RGBA"), "PNG"),
        "png-gray": _save(rgb.convert("L"), "PNG"),
        "png-palette": _save(rgb.convert("P"), "PNG"),
        "png-la": _save(rgb.convert("LA"), "PNG"),
        "png-16bit": _save(Image.new("I;16", (40, 30)), "PNG"),
        "png-1bit": _save(rgb.convert("1"), "PNG"),
        "png-animated": _save(rgb, "PNG", save_all=True, append_images=[rgb.convert("L").convert("RGB")]),
        "gif": _save(rgb, "GIF"),
        "bmp": _save(rgb, "BMP"),
        "webp": _save(rgb, "WEBP"),
    }
    png = cases["png-rgb"]
    cases["png-bad-crc"] = png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]  # IHDR's CRC broken
    cases["png-text-first"] = png[:8] + _png_chunk(b"tEXt", b"k\x00v") + png[8:]  # IHDR must come first
    jpeg = cases["jpeg-rgb"]
    dqt = jpeg.index(b"\xff\xdb")
    cases["jpeg-short-dqt"] = jpeg[: dqt + 2] + (int.from_bytes(jpeg[dqt + 2 : dqt + 4], "big") - 10).to_bytes(2, "big") + jpeg[dqt + 4 :]
    cases["jpeg-mpf"] = jpeg[:2] + b"\xff\xe2\x00\x0aMPF\x00\x00\x00" + jpeg[2:]
    cases["jpeg-garbage-after-soi"] = jpeg[:2] + b"\x00\x01" + jpeg[2:]
    cases["not-image"] = b"hello, this is text"
    return cases


def _verdict(head: bytes, size: int, limits) -> object:
    result = check_head(head, size, limits)
    return result if isinstance(result, str) else (result.status, result.reason)


@pytest.mark.filterwarnings("ignore:Image appears to be a malformed MPO file")
@pytest.mark.parametrize("cut", [None, 8192, 600, 120])
@pytest.mark.parametrize("limits", [TRAINING_LIMITS, PREDICTION_LIMITS], ids=["training", "prediction"])
def test_the_verdict_is_pillows_for_every_kind_of_file_and_every_cut(monkeypatch, cut, limits):
    for name, data in _corpus().items():
        head = data if cut is None else data[:cut]
        fast = _verdict(head, len(data), limits)
        with monkeypatch.context() as m:
            m.setattr(_header, "_plain_within", lambda *a: False)
            slow = _verdict(head, len(data), limits)
        assert fast == slow, name


def test_plain_headers_are_read_without_pillow_and_the_rest_left_to_it():
    cases = _corpus()
    plain = {n for n, d in cases.items() if _plain_within(d, len(d), TRAINING_LIMITS)}
    assert plain == {"jpeg-rgb", "jpeg-gray", "jpeg-progressive", "jpeg-exif",
                     "png-rgb", "png-rgba", "png-gray", "png-palette", "png-la"}
    jpeg = cases["jpeg-rgb"]
    assert not _plain_within(jpeg[:100], len(jpeg), TRAINING_LIMITS)  # the scan is not reached: Pillow decides
    assert not _plain_within(jpeg, TRAINING_LIMITS.max_bytes + 1, TRAINING_LIMITS)  # over the size: a fix


def test_a_plain_header_costs_a_fraction_of_pillows_open():
    import time

    head = _corpus()["jpeg-exif"]
    start = time.process_time()
    for _ in range(2000):
        assert _plain_within(head, len(head), TRAINING_LIMITS)
    fast = time.process_time() - start
    start = time.process_time()
    for _ in range(2000):
        with Image.open(io.BytesIO(head)) as img:
            img.size  # noqa: B018
    slow = time.process_time() - start
    assert fast < slow / 2, (fast, slow)
