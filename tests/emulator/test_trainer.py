"""The emulator's trainer: real models on Microsoft's sample images, determinism, persistence,
honest evaluation and odd inputs."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from cvbulk.emulator._features import GRID, decode_thumbnail, image_vector
from cvbulk.emulator._trainer import (
    MAX_BOXES,
    Model,
    RegionBox,
    Sample,
    UndecodableImageError,
    _folds,
    evaluate,
    train_model,
)

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
CLASSIFICATION = SAMPLES / "ImageClassification" / "Images"
DETECTION = SAMPLES / "ObjectDetection" / "Images"
# Where the fork is in ObjectDetection/Images/test/test_image.jpg, drawn by hand (left, top, right, bottom).
TEST_FORK = (0.10, 0.25, 0.78, 0.80)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _corners(box: RegionBox) -> tuple[float, float, float, float]:
    return (box.left, box.top, box.left + box.width, box.top + box.height)


def _encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def classification_samples() -> list[Sample]:
    return [
        Sample(path.read_bytes(), (tag,))
        for tag in ("Hemlock", "Japanese_Cherry")
        for path in sorted((CLASSIFICATION / tag).glob("*.jpg"))
    ]


@pytest.fixture(scope="module")
def detection_samples() -> list[Sample]:
    regions = json.loads((SAMPLES / "od_regions.json").read_text())
    samples = []
    for tag in ("fork", "scissors"):
        for path in sorted((DETECTION / tag).glob("*.jpg")):
            boxes = tuple(
                RegionBox(r["tag"], r["left"], r["top"], r["width"], r["height"]) for r in regions[path.name]
            )
            samples.append(Sample(path.read_bytes(), tuple(sorted({b.tag_id for b in boxes})), boxes))
    return samples


@pytest.fixture(scope="module")
def classifier(classification_samples: list[Sample]) -> Model:
    return train_model("Multiclass", classification_samples)


@pytest.fixture(scope="module")
def detector(detection_samples: list[Sample]) -> Model:
    return train_model("ObjectDetection", detection_samples)


def _synthetic(red: bool, striped: bool, rng: random.Random, size: int = 64) -> bytes:
    """A flat red or blue picture, with or without dark stripes, jittered."""
    base = (200 + rng.randint(-30, 30), rng.randint(0, 60), rng.randint(0, 60))
    colour = base if red else (base[2], base[1] + 40, base[0])
    img = Image.new("RGB", (size, size), colour)
    if striped:
        draw = ImageDraw.Draw(img)
        step = rng.randint(6, 10)
        for x in range(rng.randint(0, step), size, step):
            draw.line([(x, 0), (x, size)], fill=(20, 20, 20), width=2)
    return _encode(img)


# --------------------------------------------------------------------------- the sample images


def test_multiclass_sample_test_image_is_hemlock(classifier: Model) -> None:
    assert classifier.kind == "Multiclass"
    assert classifier.tag_ids == ("Hemlock", "Japanese_Cherry")
    result = classifier.predict((CLASSIFICATION / "Test" / "test_image.jpg").read_bytes())
    assert next(r.tag_id for r in result) == "Hemlock"
    assert result[0].probability > 0.6
    assert math.isclose(sum(r.probability for r in result), 1.0, rel_tol=1e-9)
    assert all(0.0 <= r.probability <= 1.0 and r.box is None for r in result)


def test_multiclass_training_images_predict_their_own_class(
    classifier: Model, classification_samples: list[Sample]
) -> None:
    hits = sum(classifier.predict(s.image)[0].tag_id == s.tag_ids[0] for s in classification_samples)
    assert hits == len(classification_samples)


def test_detection_sample_test_image_finds_the_fork(detector: Model) -> None:
    assert detector.kind == "ObjectDetection"
    assert detector.tag_ids == ("fork", "scissors")
    found = detector.predict((DETECTION / "test" / "test_image.jpg").read_bytes())
    assert found and len(found) <= MAX_BOXES
    top = found[0]
    assert top.tag_id == "fork" and top.probability > 0.5
    assert top.box is not None and top.box.tag_id == "fork"
    assert _iou(_corners(top.box), TEST_FORK) >= 0.5
    assert [f.probability for f in found] == sorted((f.probability for f in found), reverse=True)
    for f in found:
        assert f.box is not None and 0.01 < f.probability <= 1.0
        x0, y0, x1, y1 = _corners(f.box)
        assert 0.0 <= x0 < x1 <= 1.0 + 1e-9 and 0.0 <= y0 < y1 <= 1.0 + 1e-9


def test_detection_training_images_find_their_object(
    detector: Model, detection_samples: list[Sample]
) -> None:
    good = 0
    for s in detection_samples:
        top = detector.predict(s.image)[0]
        truth = s.regions[0]
        assert top.box is not None
        good += top.tag_id == truth.tag_id and _iou(_corners(top.box), _corners(truth)) >= 0.5
    assert good >= 0.8 * len(detection_samples)


# --------------------------------------------------------------------------- determinism, persistence


def test_training_is_deterministic(classification_samples: list[Sample], classifier: Model) -> None:
    again = train_model("Multiclass", classification_samples)
    assert again.to_dict() == classifier.to_dict()
    other_order = train_model("Multiclass", list(reversed(classification_samples)))
    test = (CLASSIFICATION / "Test" / "test_image.jpg").read_bytes()
    # sample order changes float summation order only: the same decision, nearly the same numbers
    assert other_order.predict(test)[0].tag_id == "Hemlock"
    expected = classifier.predict(test)[0].probability
    assert other_order.predict(test)[0].probability == pytest.approx(expected, abs=1e-6)


def test_detection_training_is_deterministic(detection_samples: list[Sample], detector: Model) -> None:
    again = train_model("ObjectDetection", detection_samples, seed=0)
    assert again.to_dict() == detector.to_dict()


@pytest.mark.parametrize("which", ["classifier", "detector"])
def test_round_trip_through_json_predicts_identically(which: str, request: pytest.FixtureRequest) -> None:
    model: Model = request.getfixturevalue(which)
    restored = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored.kind == model.kind and restored.tag_ids == model.tag_ids
    folder = CLASSIFICATION / "Test" if which == "classifier" else DETECTION / "test"
    image = (folder / "test_image.jpg").read_bytes()
    assert restored.predict(image) == model.predict(image)


def test_from_dict_refuses_another_format(classifier: Model) -> None:
    d = classifier.to_dict()
    with pytest.raises(ValueError, match="retrain"):
        Model.from_dict({**d, "format": "something-else/9"})


# --------------------------------------------------------------------------- multilabel


def test_multilabel_learns_independent_tags() -> None:
    rng = random.Random(7)
    samples = []
    for i in range(24):
        red, striped = bool(i % 2), bool((i // 2) % 2)
        tags = tuple(t for t, on in (("red", red), ("striped", striped)) if on)
        samples.append(Sample(_synthetic(red, striped, rng), tags))  # blue plain ones carry no tag
    model = train_model("Multilabel", samples)
    assert model.tag_ids == ("red", "striped")
    for red in (False, True):
        for striped in (False, True):
            probs = {r.tag_id: r.probability for r in model.predict(_synthetic(red, striped, rng))}
            assert (probs["red"] > 0.5) == red and (probs["striped"] > 0.5) == striped, (red, striped, probs)
    perf = evaluate("Multilabel", samples)
    assert perf.precision >= 0.9 and perf.recall >= 0.9
    assert set(perf.per_tag) == {"red", "striped"}


# --------------------------------------------------------------------------- evaluation


def test_folds_hold_out_every_sample_once_stratified(classification_samples: list[Sample]) -> None:
    folds = _folds("Multiclass", classification_samples, seed=3)
    assert len(folds) == 5  # min(5, smallest class count = 10)
    assert sorted(i for f in folds for i in f) == list(range(len(classification_samples)))
    for fold in folds:
        assert {classification_samples[i].tag_ids[0] for i in fold} == {"Hemlock", "Japanese_Cherry"}
    assert _folds("Multiclass", classification_samples, seed=3) == folds


def test_evaluate_classification_on_the_samples(classification_samples: list[Sample]) -> None:
    perf = evaluate("Multiclass", classification_samples)
    assert set(perf.per_tag) == {"Hemlock", "Japanese_Cherry"}
    for score in (perf, *perf.per_tag.values()):
        for value in (score.precision, score.recall, score.average_precision):
            assert 0.0 <= value <= 1.0
    assert perf.precision >= 0.8 and perf.recall >= 0.8 and perf.average_precision >= 0.8
    # a stricter threshold can only lose recall
    assert evaluate("Multiclass", classification_samples, threshold=0.99).recall <= perf.recall


def test_evaluate_detection_on_the_samples(detection_samples: list[Sample]) -> None:
    perf = evaluate("ObjectDetection", detection_samples)
    assert set(perf.per_tag) == {"fork", "scissors"}
    for score in (perf, *perf.per_tag.values()):
        for value in (score.precision, score.recall, score.average_precision):
            assert 0.0 <= value <= 1.0
    assert perf.recall >= 0.7 and perf.precision >= 0.3 and perf.average_precision >= 0.5


def test_evaluate_with_a_single_sample_tag_uses_two_folds() -> None:
    rng = random.Random(1)
    samples = [Sample(_synthetic(True, False, rng), ("red",)) for _ in range(4)]
    samples.append(Sample(_synthetic(False, True, rng), ("lonely",)))
    assert len(_folds("Multiclass", samples, seed=0)) == 2
    perf = evaluate("Multiclass", samples)
    # "lonely" is never in the training folds when it is held out: honest recall is 0
    assert perf.per_tag["lonely"].recall == 0.0
    assert perf.per_tag["red"].recall == 1.0


# --------------------------------------------------------------------------- odd inputs


def test_one_tag_and_unknown_tags() -> None:
    rng = random.Random(2)
    samples = [Sample(_synthetic(True, bool(i % 2), rng), ("only",)) for i in range(3)]
    model = train_model("Multiclass", samples, tag_ids=("only", "unused"))
    result = model.predict(_synthetic(False, False, rng))
    assert [(r.tag_id, r.probability) for r in result] == [("only", 1.0), ("unused", 0.0)]
    multilabel = train_model("Multilabel", samples, tag_ids=("unused",))
    probs = {r.tag_id: r.probability for r in multilabel.predict(samples[0].image)}
    assert probs["only"] > 0.5 and probs["unused"] == 0.0


def test_no_samples_and_no_regions() -> None:
    assert train_model("Multiclass", []).predict(_synthetic(True, True, random.Random(0))) == []
    image = _synthetic(True, True, random.Random(0))
    detector = train_model("ObjectDetection", [Sample(image, ())], tag_ids=("fork",))
    assert detector.tag_ids == ("fork",) and detector.predict(image) == []
    assert evaluate("Multiclass", []).per_tag == {}


def test_tiny_grayscale_and_odd_mode_images_train_and_predict() -> None:
    rng = random.Random(5)
    gray = Image.new("L", (40, 30), 90)
    ImageDraw.Draw(gray).rectangle([5, 5, 20, 25], fill=250)
    odd = [
        _encode(Image.new("RGB", (1, 1), (250, 0, 0))),
        _encode(Image.new("L", (2, 300), 30)),
        _encode(gray, "JPEG"),
        _encode(gray.convert("LA")),
        _encode(gray.convert("P"), "GIF"),
        _encode(gray.convert("RGB").convert("P"), "PNG", transparency=0),
        _encode(gray.convert("RGB").convert("CMYK"), "JPEG"),
        _encode(gray.convert("I").point(lambda v: v * 200).convert("I;16"), "PNG"),
        _encode(gray.convert("1"), "BMP"),
        _encode(Image.new("RGBA", (20, 20), (0, 0, 0, 0))),
    ]
    vectors = [image_vector(data) for data in odd]
    assert len({len(v) for v in vectors}) == 1
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vectors)
    samples = [Sample(data, ("a" if i % 2 else "b",)) for i, data in enumerate(odd)]
    model = train_model("Multiclass", samples, seed=rng.randint(0, 9))
    for data in odd:
        result = model.predict(data)
        assert math.isclose(sum(r.probability for r in result), 1.0, rel_tol=1e-9)
    box = (RegionBox("dot", 0.0, 0.0, 0.5, 0.5),)
    detector = train_model("ObjectDetection", [Sample(d, ("dot",), box) for d in odd])
    for data in odd:
        for found in detector.predict(data):
            assert found.tag_id == "dot" and 0.0 < found.probability <= 1.0


def test_thumbnail_is_small_rgb_whatever_the_input() -> None:
    big = _encode(Image.new("RGB", (3000, 1200), (10, 200, 30)), "JPEG", quality=90)
    thumb = decode_thumbnail(big, 128)
    assert thumb.mode == "RGB" and max(thumb.size) == 128 and thumb.size[1] >= GRID
    assert decode_thumbnail(_encode(Image.new("L", (1, 1))), 128).size == (16, 16)
    assert decode_thumbnail(_encode(Image.new("L", (2, 3000))), 128).size == (16, 128)


def test_undecodable_images_are_skipped_in_training_and_refused_in_prediction(
    classification_samples: list[Sample],
) -> None:
    broken = Sample(b"not an image at all", ("Hemlock",))
    truncated = Sample(classification_samples[0].image[:200], ("Hemlock",))
    samples = [*classification_samples[:4], broken, truncated, *classification_samples[-4:]]
    model = train_model("Multiclass", samples)
    assert model.tag_ids == ("Hemlock", "Japanese_Cherry")
    with pytest.raises(UndecodableImageError):
        model.predict(b"\x89PNG\r\n\x1a\n garbage")


def test_unknown_kind_is_refused(classification_samples: list[Sample]) -> None:
    with pytest.raises(ValueError, match="kind"):
        train_model("Regression", classification_samples)
    with pytest.raises(ValueError, match="kind"):
        evaluate("Regression", classification_samples)
