"""prepare_image: pass-through without decode, fixes with their phrases, rejections with their reasons."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from cvbulk.pipeline.labels import RegionLabel
from cvbulk.pipeline.prepare import (
    PREDICTION_LIMITS, TRAINING_LIMITS, ImageLimits, PreparedImage, Rejected, prepare_image,
)
from cvbulk.pipeline.scan import ScanEntry, scan_tree
from tests.corpus import make_bad_corpus, make_image, make_jpeg, make_png, restore_permissions, vanish_after_scan

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("corpus")
    expected = make_bad_corpus(root)
    with vanish_after_scan(root):
        entries = {e.relpath: e for e in scan_tree(root) if isinstance(e, ScanEntry)}
    results = {rel: prepare_image(e.path, limits=TRAINING_LIMITS) for rel, e in entries.items()}
    yield root, expected, results
    restore_permissions(root)


def test_limits() -> None:
    assert TRAINING_LIMITS.max_bytes == 6 * MB and PREDICTION_LIMITS.max_bytes == 4 * MB
    assert TRAINING_LIMITS.max_side == 10240 and TRAINING_LIMITS.max_aspect == 25
    assert TRAINING_LIMITS.formats == ("JPEG", "PNG", "BMP", "GIF")


def test_corpus_outcomes(corpus) -> None:  # type: ignore[no-untyped-def]
    _, expected, results = corpus
    for rel, outcome in expected.items():
        if outcome == "skipped":
            assert rel not in results, rel  # the scan reported it; prepare never sees it
            continue
        got = results[rel]
        if outcome in ("uploaded", "duplicate"):
            assert isinstance(got, PreparedImage) and got.fixes == (), (rel, got)
        elif outcome == "fixed":
            assert isinstance(got, PreparedImage) and got.fixes, (rel, got)
            assert got.format in ("JPEG", "PNG") and len(got.data) <= TRAINING_LIMITS.max_bytes
            with Image.open(io.BytesIO(got.data)) as img:  # what we send decodes, at the size we claim
                img.load()
                assert img.size == (got.width, got.height) and img.mode in ("L", "RGB", "RGBA", "P", "LA")
        else:
            assert isinstance(got, Rejected), (rel, got)
            assert got.reason and "\n" not in got.reason and len(got.reason) < 200


def test_corpus_reasons_and_fixes(corpus) -> None:  # type: ignore[no-untyped-def]
    root, expected, r = corpus
    assert r["bad/empty.jpg"] == Rejected("empty", "empty file (0 bytes)")
    assert r["bad/truncated.jpg"].code == "corrupt" and "truncated" in r["bad/truncated.jpg"].reason
    assert r["bad/text.jpg"] == Rejected("not_image", "not an image: the file holds text")
    assert r["bad/bomb.png"].code == "bomb" and "megapixels" in r["bad/bomb.png"].reason
    assert r["bad/wide_20000x300.png"].code == "aspect" and "66.7:1" in r["bad/wide_20000x300.png"].reason
    assert r["bad/vanishing.jpg"].code == "vanished"
    assert r["bad/png_named.jpg"].format == "PNG"
    assert r["bad/gray16.png"].fixes == ("converted 16-bit grayscale to 8-bit",)
    assert r["bad/gray16.png"].format == "PNG"
    assert r["bad/cmyk.jpg"].fixes == ("converted CMYK to RGB",)
    assert r["bad/photo.webp"].fixes == ("converted WEBP to JPEG",)
    assert r["bad/photo.tiff"].fixes == ("converted TIFF to JPEG",)
    big = r["bad/big_12mb.png"]
    assert big.fixes[0] == "converted PNG to JPEG" and big.fixes[1].startswith("re-encoded under 6 MB at quality")
    assert r["bad/dup_a.jpg"].sha256 == r["bad/dup_b.jpg"].sha256
    # the 16-bit grey is scaled to 8 bits, not clipped to white
    with Image.open(io.BytesIO(r["bad/gray16.png"].data)) as img:
        lo, hi = img.getextrema()
        assert img.mode == "L" and 0 < hi < 255


def test_pass_through_is_the_original_bytes_without_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(self):  # type: ignore[no-untyped-def]
        raise AssertionError("pass-through must not decode")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    files = sorted((SAMPLES / "ImageClassification").rglob("*.jpg"))
    assert files
    for f in files:
        raw = f.read_bytes()
        got = prepare_image(f, limits=TRAINING_LIMITS, regions=[RegionLabel("t", 0, 0, 1, 1)])
        assert isinstance(got, PreparedImage) and got.passed_through
        assert got.data == raw and got.sha256 == hashlib.sha256(raw).hexdigest()
        assert got.format == "JPEG" and got.regions == (RegionLabel("t", 0, 0, 1, 1),)
    assert prepare_image(data=files[0].read_bytes(), limits=PREDICTION_LIMITS).data == files[0].read_bytes()


def test_downscale_keeps_regions_and_orientation(tmp_path: Path) -> None:
    src = make_jpeg(tmp_path / "a.jpg", (640, 480), seed=1, orientation=6)
    region = RegionLabel("t", 0.25, 0.5, 0.5, 0.25)
    limits = ImageLimits(max_bytes=6 * MB, max_side=200)
    got = prepare_image(src, limits=limits, regions=[region])
    assert isinstance(got, PreparedImage)
    assert got.fixes == ("downscaled 640x480 to 200x150",)
    assert (got.width, got.height, got.format) == (200, 150, "JPEG")
    assert got.regions == (region,)  # normalised: scaling leaves them right; the grid is never rotated
    with Image.open(io.BytesIO(got.data)) as img:
        assert img.size == (200, 150) and img.getexif().get(0x0112) == 6
    again = prepare_image(src, limits=limits, regions=[region])
    assert again == got  # deterministic bytes


def test_byte_limit_ladder_is_deterministic(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (300, 300), random.Random(1).randbytes(300 * 300 * 3))
    src = tmp_path / "n.png"
    noise.save(src)
    limits = ImageLimits(max_bytes=40_000)
    got = prepare_image(src, limits=limits)
    assert isinstance(got, PreparedImage) and len(got.data) <= 40_000
    assert got.fixes[0] == "converted PNG to JPEG"
    assert got.fixes[1].startswith("re-encoded under 39 KB at quality 65, downscaled 300x300 to ")
    assert prepare_image(src, limits=limits) == got


def test_alpha_goes_to_png_and_opaque_alpha_to_jpeg(tmp_path: Path) -> None:
    rgba = make_image((64, 64), 3)
    rgba.putalpha(Image.linear_gradient("L").resize((64, 64)))
    rgba.save(tmp_path / "a.webp", "WEBP", lossless=True)
    got = prepare_image(tmp_path / "a.webp", limits=TRAINING_LIMITS)
    assert got.format == "PNG" and got.fixes == ("converted WEBP to PNG",)
    with Image.open(io.BytesIO(got.data)) as img:
        assert img.mode == "RGBA"
    opaque = make_image((64, 64), 4)
    opaque.putalpha(255)
    opaque.save(tmp_path / "o.webp", "WEBP", lossless=True)
    assert prepare_image(tmp_path / "o.webp", limits=TRAINING_LIMITS).format == "JPEG"


def test_animation_flattened_only_when_reencoded(tmp_path: Path) -> None:
    frames = [make_image((64, 64), i) for i in range(3)]
    frames[0].save(tmp_path / "a.webp", "WEBP", save_all=True, append_images=frames[1:], duration=50)
    got = prepare_image(tmp_path / "a.webp", limits=TRAINING_LIMITS)
    assert got.fixes == ("flattened animated WEBP to its first frame", "converted WEBP to JPEG")


def test_float_and_int_images(tmp_path: Path) -> None:
    Image.linear_gradient("L").convert("F").point(lambda v: v * 1000.0).save(tmp_path / "f.tiff")
    Image.linear_gradient("L").convert("I").point(lambda v: v * 70000).save(tmp_path / "i.tiff")
    f = prepare_image(tmp_path / "f.tiff", limits=TRAINING_LIMITS)
    assert f.fixes == ("converted 32-bit float grayscale to 8-bit", "converted TIFF to JPEG")
    i = prepare_image(tmp_path / "i.tiff", limits=TRAINING_LIMITS)
    assert i.fixes == ("converted 32-bit integer grayscale to 8-bit", "converted TIFF to JPEG")
    with Image.open(io.BytesIO(i.data)) as img:
        assert img.mode == "L" and img.getextrema()[0] < 10 and img.getextrema()[1] > 245  # scaled, not clipped


def test_truncated_png_and_trailing_junk(tmp_path: Path) -> None:
    png = make_png(tmp_path / "a.png", (64, 64), 5).read_bytes()
    got = prepare_image(data=png[: len(png) // 2], limits=TRAINING_LIMITS)
    assert isinstance(got, Rejected) and got.code == "corrupt"
    jpg = make_jpeg(tmp_path / "b.jpg", (64, 64), 6).read_bytes() + b"\0" * 500  # junk after the end marker
    ok = prepare_image(data=jpg, limits=TRAINING_LIMITS)
    assert isinstance(ok, PreparedImage) and ok.data == jpg and ok.passed_through


def test_our_pixel_limit_and_region_limit(tmp_path: Path) -> None:
    src = make_jpeg(tmp_path / "a.jpg", (100, 100))
    bomb = prepare_image(src, limits=ImageLimits(max_bytes=MB, max_pixels=5000))
    assert isinstance(bomb, Rejected) and bomb.code == "bomb" and "100x100" in bomb.reason
    many = [RegionLabel("t", 0, 0, 0.1, 0.1)] * 301
    assert prepare_image(src, limits=TRAINING_LIMITS, regions=many).code == "too_many_regions"
    assert isinstance(prepare_image(src, limits=PREDICTION_LIMITS, regions=many), PreparedImage)


def test_unreadable_inputs(tmp_path: Path) -> None:
    assert prepare_image(tmp_path / "missing.jpg", limits=TRAINING_LIMITS).code == "vanished"
    assert prepare_image(tmp_path, limits=TRAINING_LIMITS).code == "unreadable"
    locked = make_jpeg(tmp_path / "l.jpg")
    os.chmod(locked, 0)
    try:
        got = prepare_image(locked, limits=TRAINING_LIMITS)
        if os.geteuid() != 0:  # root reads it anyway
            assert got == Rejected("unreadable", "cannot read the file: permission denied")
    finally:
        os.chmod(locked, 0o644)
    with pytest.raises(TypeError):
        prepare_image(limits=TRAINING_LIMITS)


def test_multi_picture_jpeg_passes_as_jpeg() -> None:
    pics = [make_image((200, 150), i) for i in range(2)]
    buf = io.BytesIO()
    pics[0].save(buf, "MPO", save_all=True, append_images=pics[1:])  # what phone cameras write
    got = prepare_image(data=buf.getvalue(), limits=TRAINING_LIMITS)
    assert isinstance(got, PreparedImage) and got.passed_through and got.format == "JPEG"
    small = prepare_image(data=buf.getvalue(), limits=ImageLimits(max_bytes=MB, max_side=100))
    assert small.fixes == ("kept the first picture of a multi-picture JPEG", "downscaled 200x150 to 100x75")


def test_bomb_rejected_from_the_header_even_without_pillows_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.corpus import make_bomb_png

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # some code in the process may switch it off
    got = prepare_image(make_bomb_png(tmp_path / "b.png", (30_000, 30_000)), limits=TRAINING_LIMITS)
    assert got == Rejected("bomb", "decompression bomb: the header claims 30000x30000 (900 megapixels, limit 179)")


def _noisy_jpeg(width: int, height: int, **save: object) -> bytes:
    """A JPEG of noise: big for its size (well past HEAD_BYTES), as a photo is."""
    img = Image.frombytes("RGB", (width, height), random.Random(3).randbytes(width * height * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **save)
    return buf.getvalue()


def _verdict(got: PreparedImage | Rejected) -> tuple:
    if isinstance(got, Rejected):
        return ("rejected", got.code, got.reason)
    return ("prepared", got.width, got.height, got.format, got.fixes, got.size)


def test_header_only_decides_as_a_whole_read_does(corpus) -> None:  # type: ignore[no-untyped-def]
    root, _, results = corpus
    for rel, whole in results.items():
        if whole == Rejected("vanished", "the file vanished before it could be read"):
            continue
        head = prepare_image(root / rel, limits=TRAINING_LIMITS, header_only=True)
        assert _verdict(head) == _verdict(whole), rel
        if isinstance(head, PreparedImage) and head.fixes:
            assert head.data == whole.data and head.sha256 == whole.sha256  # a fix is read and hashed whole


def test_header_only_reads_neither_the_whole_file_nor_its_hash(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import cvbulk.pipeline.prepare as prepare

    path = tmp_path / "big.jpg"
    path.write_bytes(_noisy_jpeg(600, 400))
    size = path.stat().st_size
    assert size > prepare.HEAD_BYTES
    monkeypatch.setattr(prepare, "_read_whole", lambda *a: pytest.fail("read whole"))
    got = prepare_image(path, limits=TRAINING_LIMITS, header_only=True)
    assert isinstance(got, PreparedImage) and got.passed_through
    assert (got.data, got.sha256, got.size, got.width, got.height) == (b"", None, size, 600, 400)
    assert "not computed" in repr(got)


def test_header_only_reads_whole_what_it_cannot_judge_from_the_head(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _noisy_jpeg(600, 400)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) - 5000])  # no end marker: only a decode can tell
    got = prepare_image(path, limits=TRAINING_LIMITS, header_only=True)
    assert isinstance(got, Rejected) and got.code == "corrupt"
    # a header bigger than HEAD_BYTES (a big colour profile before the frame): judged from the whole file
    path.write_bytes(_noisy_jpeg(600, 400, icc_profile=bytes(150_000)))
    got = prepare_image(path, limits=TRAINING_LIMITS, header_only=True)
    assert isinstance(got, PreparedImage) and got.passed_through and got.sha256 is not None and got.data
