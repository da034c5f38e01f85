"""The header check's two looks: 32 KB first, then up to 128 KB, and only then the whole file."""

from __future__ import annotations

import io
import os

from PIL import Image

from cvbulk.pipeline import prepare
from cvbulk.pipeline.prepare import TRAINING_LIMITS, PreparedImage, prepare_image


def _photo(path, icc: bytes | None = None) -> None:
    img = Image.frombytes("RGB", (700, 500), os.urandom(700 * 500 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **({"icc_profile": icc} if icc else {}))
    path.write_bytes(buf.getvalue())
    assert path.stat().st_size > prepare.HEAD_BYTES


def test_a_header_in_the_first_look_passes_without_reading_more(tmp_path, monkeypatch):
    path = tmp_path / "a.jpg"
    _photo(path)
    looks: list[int] = []
    real = prepare._read_head
    monkeypatch.setattr(prepare, "_read_head", lambda p, limits, n=prepare.FIRST_LOOK: looks.append(n) or real(p, limits, n))
    result = prepare_image(path, limits=TRAINING_LIMITS, header_only=True)
    assert isinstance(result, PreparedImage) and result.passed_through and result.sha256 is None
    assert result.size == path.stat().st_size and looks == [prepare.FIRST_LOOK]


def test_a_header_past_the_first_look_passes_on_the_second(tmp_path, monkeypatch):
    path = tmp_path / "b.jpg"
    _photo(path, icc=b"\x00" * 60_000)  # a large colour profile before the frame: past 32 KB, within 128 KB
    looks: list[int] = []
    real = prepare._read_head
    monkeypatch.setattr(prepare, "_read_head", lambda p, limits, n=prepare.FIRST_LOOK: looks.append(n) or real(p, limits, n))
    result = prepare_image(path, limits=TRAINING_LIMITS, header_only=True)
    assert isinstance(result, PreparedImage) and result.passed_through and result.sha256 is None  # not read whole
    assert looks == [prepare.FIRST_LOOK, prepare.HEAD_BYTES]
