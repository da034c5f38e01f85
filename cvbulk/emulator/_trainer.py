"""The emulator's small deterministic trainer: features, fit, predict, evaluate (Pillow only).

* Multiclass: multinomial logistic regression on standardised image vectors (softmax, sums to 1).
* Multilabel: one-vs-rest logistic regression (independent probabilities).
* ObjectDetection: a softmax over {background, tags} scores grid-aligned windows of a cell grid
  (window sizes clustered from the training regions), trained with sampled and hard-mined
  background windows; a ridge regressor refines each window towards the object; per-tag
  non-maximum suppression with box fusion and soft suppression of partial overlaps.

Fitting is closed form (ridge, linear discriminant warm start) plus full-batch gradient descent
with momentum for a fixed number of steps; every sampling step draws from ``random.Random(seed)``
and every tie is broken explicitly: the same samples and seed give the same model and the same
probabilities, in any process. Pure Python on short vectors: no numpy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import mul
from typing import Any, Literal

from ._cancel import checkpoint
from ._features import FEATURE_VERSION, GRID, CellGrid, UndecodableImageError, cell_grid, image_vector

__all__ = [
    "Kind",
    "Model",
    "Performance",
    "RegionBox",
    "Sample",
    "ScoredTag",
    "TagScore",
    "UndecodableImageError",
    "cross_validate",
    "evaluate",
    "summarise",
    "train_model",
]

Kind = Literal["Multiclass", "Multilabel", "ObjectDetection"]
KINDS: tuple[str, ...] = ("Multiclass", "Multilabel", "ObjectDetection")
MODEL_FORMAT = "cvbulk-trainer/1"

MAX_BOXES = 20  # detections returned per image, best first
MIN_BOX_PROBABILITY = 0.01
NMS_IOU = 0.4  # boxes of one tag overlapping more than this are the same object
CONTAIN_SUPPRESS = 0.7  # ... and so is a box mostly inside a better one (a part of the object)
SOFT_SUPPRESS = 1.0  # how much a partial overlap with a better box lowers a box's probability
FUSE_IOU = 0.5  # suppressed windows this close to a winner refine its coordinates
POSITIVE_IOU = 0.5  # training windows at least this close to a region show that region's tag
NEGATIVE_IOU = 0.3  # ... and at most this close to every region show background
NEGATIVES_PER_IMAGE = 16
PARTIAL_IOU = 0.05  # background windows closer than this to a region are "partial" ...
PARTIALS_PER_IMAGE = 8  # ... and a few of them are always in the training set
POSITIVES_PER_REGION = 6
REGRESS_IOU = 0.4  # windows at least this close to a region teach the box regressor
REGRESS_PER_REGION = 12
MINING_POOL = 64  # background windows per image scored by the first model ...
HARD_NEGATIVES_PER_IMAGE = 8  # ... and the best-scoring ones added for the second
DETECTOR_STEPS = 12  # logistic refinement steps after the closed-form discriminant
LR_CAP = 2.0  # the largest gradient step on standardised features
BACKGROUND = "__background__"


# --------------------------------------------------------------------------- public records


@dataclass(frozen=True)
class RegionBox:
    """A box in normalised coordinates (0..1 of the image's width and height)."""

    tag_id: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Sample:
    image: bytes
    tag_ids: tuple[str, ...]
    regions: tuple[RegionBox, ...] = ()

    def __repr__(self) -> str:  # never dump megabytes of image into a log line
        return f"Sample(image=<{len(self.image)} bytes>, tag_ids={self.tag_ids!r}, regions={self.regions!r})"


@dataclass(frozen=True)
class ScoredTag:
    tag_id: str
    probability: float
    box: RegionBox | None = None


@dataclass(frozen=True)
class TagScore:
    precision: float
    recall: float
    average_precision: float


@dataclass(frozen=True)
class Performance:
    precision: float
    recall: float
    average_precision: float
    per_tag: dict[str, TagScore] = field(default_factory=dict)


# --------------------------------------------------------------------------- linear algebra helpers


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(map(mul, a, b))


def _softmax(z: Sequence[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class _Standardiser:
    mean: tuple[float, ...]
    scale: tuple[float, ...]  # 1 / std, 0 for constant features

    @classmethod
    def fit(cls, rows: Sequence[Sequence[float]]) -> _Standardiser:
        n = len(rows)
        cols = list(zip(*rows))
        mean = [sum(c) / n for c in cols]
        scale = []
        for c, m in zip(cols, mean):
            var = sum((v - m) ** 2 for v in c) / n
            scale.append(1.0 / math.sqrt(var) if var > 1e-12 else 0.0)
        return cls(tuple(mean), tuple(scale))

    def apply(self, row: Sequence[float]) -> list[float]:
        return [(v - m) * s for v, m, s in zip(row, self.mean, self.scale)]


@dataclass(frozen=True)
class _Linear:
    """One affine score per output on raw features: ``weights[c] . x + bias[c]`` (the
    standardisation used while fitting is folded into the weights, so scoring is one dot each)."""

    weights: tuple[tuple[float, ...], ...]
    bias: tuple[float, ...]

    @classmethod
    def from_standardised(
        cls, st: _Standardiser, w: Sequence[Sequence[float]], b: Sequence[float]
    ) -> _Linear:
        raw = [tuple(wi * si for wi, si in zip(wk, st.scale)) for wk in w]
        bias = tuple(bk - _dot(rk, st.mean) for rk, bk in zip(raw, b))
        return cls(tuple(raw), bias)

    def scores(self, row: Sequence[float]) -> list[float]:
        return [_dot(w, row) + b for w, b in zip(self.weights, self.bias)]

    def to_dict(self) -> dict[str, Any]:
        return {"weights": [list(w) for w in self.weights], "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Linear:
        return cls(tuple(tuple(map(float, w)) for w in d["weights"]), tuple(map(float, d["bias"])))


def _solve_spd(a: list[list[float]], rhs: list[list[float]]) -> list[list[float]]:
    """Solve ``a @ x = r`` for each r in ``rhs``; ``a`` symmetric positive definite (Cholesky)."""
    n = len(a)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        li = low[i]
        for j in range(i + 1):
            lj = low[j]
            v = a[i][j] - _dot(li[:j], lj[:j])
            li[j] = math.sqrt(max(v, 1e-12)) if i == j else v / lj[j]
    out = []
    for r in rhs:
        y = [0.0] * n
        for i in range(n):
            y[i] = (r[i] - _dot(low[i][:i], y[:i])) / low[i][i]
        x = [0.0] * n
        for i in reversed(range(n)):
            x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
        out.append(x)
    return out


def _shrunk_gram(cols: Sequence[Sequence[float]], sw: Sequence[float], shrink: float) -> list[list[float]]:
    """Weighted second-moment matrix of (already centred) columns, shrunk towards a multiple of
    the identity so that it stays well conditioned with few samples or constant features."""
    d = len(cols)
    weighted = [[c * s for c, s in zip(col, sw)] for col in cols]
    gram = [[0.0] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            gram[i][j] = gram[j][i] = (1.0 - shrink) * _dot(weighted[i], cols[j])
    ridge = shrink * (sum(gram[i][i] for i in range(d)) / ((1.0 - shrink) * d) or 1.0)
    for i in range(d):
        gram[i][i] += ridge
    return gram


def _fit_linear(
    rows: Sequence[Sequence[float]],
    targets: Sequence[Sequence[float]],
    sample_weights: Sequence[float],
    *,
    loss: Literal["softmax", "sigmoid", "squared"],
    l2: float,
    work_budget: float = 6e7,
    warm_start: bool = False,
    steps: int | None = None,
) -> _Linear:
    """Fit on standardised features, deterministically (no randomness: a pure function of inputs).

    * ``squared``: ridge regression in closed form.
    * ``softmax`` / ``sigmoid``: logistic regression by full-batch gradient descent with momentum,
      from zero weights or (``warm_start``, softmax) from the linear discriminant of the classes,
      which is closed form and already close, so few steps are needed. The number of steps
      shrinks with the data size to bound the pure-Python work.
    """
    st = _Standardiser.fit(rows)
    xs = [st.apply(r) for r in rows]
    n, d, c = len(xs), len(xs[0]), len(targets[0])
    total_w = sum(sample_weights) or 1.0
    sw = [w / total_w for w in sample_weights]
    cols = list(zip(*xs))  # gradients and Gram matrices are column dot products
    mean_t = [sum(t[k] * s for t, s in zip(targets, sw)) for k in range(c)]
    if loss == "squared":
        gram = _shrunk_gram(cols, sw, shrink=l2)
        residuals = [[(t[k] - mean_t[k]) * s for t, s in zip(targets, sw)] for k in range(c)]
        rhs = [[_dot(r, col) for col in cols] for r in residuals]
        w = _solve_spd(gram, rhs)
        return _Linear.from_standardised(st, w, mean_t)

    w = [[0.0] * d for _ in range(c)]
    b = [0.0] * c
    if loss == "softmax":  # start from the prior so a one-class problem converges to certainty
        b = [math.log(max(p, 1e-6)) for p in mean_t]
    if warm_start and loss == "softmax":
        w, b = _discriminant(xs, cols, targets, sw, mean_t)
    if steps is None:
        steps = int(max(30, min(300, work_budget / max(1, n * d * c))))
    # step 1/L with L the loss curvature at p = 1/2 (0.25 x the largest eigenvalue of the weighted
    # Gram matrix): stable with momentum whatever the feature correlations
    lr, momentum = min(LR_CAP, 1.0 / (0.25 * _largest_eigenvalue(xs, cols, sw))), 0.9
    vw = [[0.0] * d for _ in range(c)]
    vb = [0.0] * c
    for _ in range(steps):
        checkpoint()
        errors: list[list[float]] = [[] for _ in range(c)]
        for x, t, s in zip(xs, targets, sw):
            z = [_dot(wk, x) + bk for wk, bk in zip(w, b)]
            p = _softmax(z) if loss == "softmax" else [_sigmoid(v) for v in z]
            for k in range(c):
                errors[k].append((p[k] - t[k]) * s)
        for k in range(c):
            ek = errors[k]
            gw = [_dot(ek, col) + l2 * wi for col, wi in zip(cols, w[k])]
            vw[k] = [momentum * v - lr * g for v, g in zip(vw[k], gw)]
            w[k] = [wi + v for wi, v in zip(w[k], vw[k])]
            vb[k] = momentum * vb[k] - lr * sum(ek)
            b[k] += vb[k]
    return _Linear.from_standardised(st, w, b)


def _largest_eigenvalue(
    xs: Sequence[Sequence[float]], cols: Sequence[Sequence[float]], sw: Sequence[float], rounds: int = 12
) -> float:
    """Power iteration on X^T W X, never materialised (deterministic start vector)."""
    v = [1.0] * len(cols)
    lam = 1.0
    for _ in range(rounds):
        xv = [_dot(x, v) * s for x, s in zip(xs, sw)]
        u = [_dot(col, xv) for col in cols]
        lam = math.sqrt(_dot(u, u))
        if lam <= 1e-12:
            return 1.0
        v = [e / lam for e in u]
    return lam


def _discriminant(
    xs: Sequence[Sequence[float]],
    cols: Sequence[Sequence[float]],
    targets: Sequence[Sequence[float]],
    sw: Sequence[float],
    mass: Sequence[float],
) -> tuple[list[list[float]], list[float]]:
    """Linear discriminant analysis with a shrunk pooled covariance: w_k = S^-1 mu_k,
    b_k = -mu_k S^-1 mu_k / 2 + log prior_k, in the standardised space."""
    c = len(mass)
    means = []
    for k in range(c):
        share = [t[k] * s for t, s in zip(targets, sw)]
        means.append([_dot(share, col) / (mass[k] or 1.0) for col in cols])
    label = [max(range(c), key=lambda k: (t[k], -k)) for t in targets]
    centred = [[v - means[y][j] for v, y in zip(col, label)] for j, col in enumerate(cols)]
    gram = _shrunk_gram(centred, sw, shrink=0.2)
    w = _solve_spd(gram, means)
    b = [-0.5 * _dot(wk, mk) + math.log(max(p, 1e-6)) for wk, mk, p in zip(w, means, mass)]
    return w, b


# --------------------------------------------------------------------------- detection geometry

_Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in grid cells, exclusive ends
_Corners = tuple[float, float, float, float]  # x0, y0, x1, y1 normalised


def _iou(a: _Corners, b: _Corners) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _covered(a: _Corners, b: _Corners) -> float:
    """The share of box ``a`` inside box ``b``."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return ix * iy / area if ix > 0 and iy > 0 and area > 0 else 0.0


def _box_corners(r: RegionBox) -> _Corners:
    return (r.left, r.top, r.left + r.width, r.top + r.height)


def _window_corners(win: _Window) -> _Corners:
    return (win[0] / GRID, win[1] / GRID, win[2] / GRID, win[3] / GRID)


def _snap(r: RegionBox) -> _Window:
    x0 = min(GRID - 1, max(0, round(r.left * GRID)))
    y0 = min(GRID - 1, max(0, round(r.top * GRID)))
    x1 = min(GRID, max(x0 + 1, round((r.left + r.width) * GRID)))
    y1 = min(GRID, max(y0 + 1, round((r.top + r.height) * GRID)))
    return (x0, y0, x1, y1)


def _window_sizes(regions: Sequence[RegionBox], clusters: int = 6) -> list[tuple[int, int]]:
    """Representative region sizes in cells (k-means on log width / log height, initialised from
    the sizes sorted by area, so deterministic), each with a step smaller and larger, so that the
    sliding window covers the scales the project was trained on without trying every size."""
    points = sorted(
        {(math.log(max(r.width, 1e-3) * GRID), math.log(max(r.height, 1e-3) * GRID)) for r in regions},
        key=lambda p: (p[0] + p[1], p),
    )
    if not points:
        return []
    k = min(clusters, len(points))
    centres = [points[(2 * i + 1) * len(points) // (2 * k)] for i in range(k)]
    for _ in range(10):
        groups: list[list[tuple[float, float]]] = [[] for _ in centres]
        for p in points:
            nearest = min(range(k), key=lambda i: (math.dist(p, centres[i]), i))
            groups[nearest].append(p)
        centres = [
            (sum(p[0] for p in g) / len(g), sum(p[1] for p in g) / len(g)) if g else c
            for g, c in zip(groups, centres)
        ]
    sizes: set[tuple[int, int]] = set()
    for lw, lh in centres:
        for f in (0.8, 1.0, 1.25):
            w = min(GRID, max(1, round(math.exp(lw) * f)))
            h = min(GRID, max(1, round(math.exp(lh) * f)))
            sizes.add((w, h))
    return sorted(sizes)


def _windows(sizes: Sequence[tuple[int, int]]) -> list[_Window]:
    out: list[_Window] = []
    for w, h in sizes:
        # stride 1 cell for small windows, 2 for large ones: large windows barely move in IoU
        step = 1 if w * h <= GRID * GRID // 4 else 2
        xs = list(range(0, GRID - w + 1, step))
        ys = list(range(0, GRID - h + 1, step))
        if xs[-1] != GRID - w:
            xs.append(GRID - w)
        if ys[-1] != GRID - h:
            ys.append(GRID - h)
        out.extend((x, y, x + w, y + h) for y in ys for x in xs)
    return out


def _window_vector(grid: CellGrid, win: _Window) -> list[float]:
    """Mean channels inside the window, mean channels in a ring around it (the object ends at the
    box edge), and the box shape."""
    x0, y0, x1, y1 = win
    area = (x1 - x0) * (y1 - y0)
    inner = grid.window_sum(x0, y0, x1, y1)
    mx, my = max(1, (x1 - x0) // 3), max(1, (y1 - y0) // 3)
    ox0, oy0, ox1, oy1 = max(0, x0 - mx), max(0, y0 - my), min(GRID, x1 + mx), min(GRID, y1 + my)
    outer = grid.window_sum(ox0, oy0, ox1, oy1)
    ring_area = (ox1 - ox0) * (oy1 - oy0) - area
    inner_mean = [v / area for v in inner]
    if ring_area > 0:
        ring = [(o - i) / ring_area - m for o, i, m in zip(outer, inner, inner_mean)]
    else:
        ring = [0.0] * len(inner)
    w, h = (x1 - x0) / GRID, (y1 - y0) / GRID
    return inner_mean + ring + [math.log(w), math.log(h)]


# --------------------------------------------------------------------------- the model


class Model:
    """A trained model: ``predict(image)`` returns every known tag (classification) or the
    detected boxes (ObjectDetection), best first."""

    def __init__(
        self,
        kind: str,
        tag_ids: Sequence[str],
        linear: _Linear | None,
        *,
        scored_tag_ids: Sequence[str] | None = None,
        window_sizes: Sequence[tuple[int, int]] = (),
        box_regressor: _Linear | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind: str = kind
        self.tag_ids: tuple[str, ...] = tuple(tag_ids)
        # the tags that had samples; the others are always predicted with probability 0
        self._scored = self.tag_ids if scored_tag_ids is None else tuple(scored_tag_ids)
        # outputs: the scored tags in order (classification) or [background] + them (detection)
        self._linear = linear
        self._window_sizes = tuple(window_sizes)
        self._box_regressor = box_regressor  # window -> (dx, dy, dlog w, dlog h) towards the object
        self._windows = _windows(self._window_sizes) if self._window_sizes else []

    def __repr__(self) -> str:
        return f"Model(kind={self.kind!r}, tags={len(self.tag_ids)})"

    # ----------------------------------------------------------------- predict

    def predict(self, image: bytes) -> list[ScoredTag]:
        """Score one encoded image; raises (from Pillow) if it cannot be decoded."""
        if self.kind == "ObjectDetection":
            return self._detect(cell_grid(image))
        return self._classify(image_vector(image))

    def _classify(self, vector: Sequence[float]) -> list[ScoredTag]:
        probability = dict.fromkeys(self.tag_ids, 0.0)
        if self._linear is not None:
            z = self._linear.scores(vector)
            probs = _softmax(z) if self.kind == "Multiclass" else [_sigmoid(v) for v in z]
            probability.update(zip(self._scored, probs))
        elif self.kind == "Multiclass" and len(self._scored) == 1:
            probability[self._scored[0]] = 1.0  # a single class: nothing to tell apart
        scored = [ScoredTag(t, p) for t, p in probability.items()]
        return sorted(scored, key=lambda s: (-s.probability, s.tag_id))

    def _detect(self, grid: CellGrid) -> list[ScoredTag]:
        if self._linear is None or not self._windows:
            return []
        n_tags = len(self._scored)
        candidates: list[list[tuple[float, _Window]]] = [[] for _ in range(n_tags)]
        vectors: dict[_Window, list[float]] = {}
        for win in self._windows:
            vector = _window_vector(grid, win)
            p = _softmax(self._linear.scores(vector))
            for k in range(n_tags):
                if p[k + 1] > MIN_BOX_PROBABILITY:
                    candidates[k].append((p[k + 1], win))
                    vectors[win] = vector
        regressor = self._box_regressor
        found: list[ScoredTag] = []
        for k, cands in enumerate(candidates):
            cands.sort(key=lambda c: (-c[0], c[1]))
            boxes = [
                (p, _apply_deltas(win, regressor.scores(vectors[win])) if regressor else _window_corners(win))
                for p, win in cands
            ]
            tag = self._scored[k]
            found.extend(ScoredTag(tag, p, box) for p, box in _nms(tag, boxes) if p > MIN_BOX_PROBABILITY)
        found.sort(key=lambda s: (-s.probability, s.tag_id, _box_key(s.box)))
        return found[:MAX_BOXES]

    # ----------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form; ``Model.from_dict(m.to_dict())`` predicts identically."""
        return {
            "format": MODEL_FORMAT,
            "feature_version": FEATURE_VERSION,
            "grid": GRID,
            "kind": self.kind,
            "tag_ids": list(self.tag_ids),
            "scored_tag_ids": list(self._scored),
            "linear": self._linear.to_dict() if self._linear else None,
            "window_sizes": [list(s) for s in self._window_sizes],
            "box_regressor": self._box_regressor.to_dict() if self._box_regressor else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Model:
        if d.get("format") != MODEL_FORMAT or d.get("feature_version") != FEATURE_VERSION:
            raise ValueError("model was saved by an incompatible trainer version; retrain the project")
        if d.get("grid") != GRID:
            raise ValueError("model was saved with another detection grid; retrain the project")
        linear = _Linear.from_dict(d["linear"]) if d.get("linear") else None
        sizes = [(int(w), int(h)) for w, h in d.get("window_sizes", [])]
        boxes = _Linear.from_dict(d["box_regressor"]) if d.get("box_regressor") else None
        return cls(
            d["kind"],
            [str(t) for t in d["tag_ids"]],
            linear,
            scored_tag_ids=[str(t) for t in d["scored_tag_ids"]],
            window_sizes=sizes,
            box_regressor=boxes,
        )


def _box_key(box: RegionBox | None) -> tuple[float, ...]:
    return () if box is None else (box.left, box.top, box.width, box.height)


def _nms(tag_id: str, boxes: Sequence[tuple[float, _Corners]]) -> list[tuple[float, RegionBox]]:
    """Greedy non-maximum suppression over refined boxes sorted best first. Each kept box is the
    probability-weighted mean of the boxes it suppresses that overlap it closely (many good
    windows agree better than the single best one); a last pass drops fused boxes that moved onto
    a better one."""
    fused: list[tuple[float, _Corners]] = []
    alive = list(boxes)
    while alive and len(fused) < MAX_BOXES:
        p, best = alive[0]
        rest = []
        acc, acc_w = [0.0, 0.0, 0.0, 0.0], 0.0
        for q, box in alive:
            overlap = _iou(best, box)
            if overlap >= FUSE_IOU:
                acc = [a + q * v for a, v in zip(acc, box)]
                acc_w += q
            if not _same_object(box, best, overlap):
                rest.append((q, box))
        fused.append((p, (acc[0] / acc_w, acc[1] / acc_w, acc[2] / acc_w, acc[3] / acc_w)))
        alive = rest
    kept: list[tuple[float, _Corners]] = []
    for p, box in fused:
        if any(_same_object(box, other, _iou(box, other)) for _, other in kept):
            continue
        # soft suppression: a box that shares part of a better one is less likely a new object
        for _, other in kept:
            p *= 1.0 - SOFT_SUPPRESS * max(_iou(box, other), _covered(box, other))
        kept.append((p, box))
    kept.sort(key=lambda k: (-k[0], k[1]))
    return [(p, RegionBox(tag_id, x0, y0, x1 - x0, y1 - y0)) for p, (x0, y0, x1, y1) in kept]


def _same_object(box: _Corners, better: _Corners, overlap: float) -> bool:
    return overlap > NMS_IOU or _covered(box, better) >= CONTAIN_SUPPRESS


# --------------------------------------------------------------------------- training


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown project kind {kind!r}; expected one of {', '.join(KINDS)}")


def _sample_tags(kind: str, samples: Sequence[Sample]) -> list[str]:
    tags: set[str] = set()
    for s in samples:
        if kind == "ObjectDetection":
            tags.update(r.tag_id for r in s.regions)
        else:
            tags.update(s.tag_ids)
    return sorted(tags)


def train_model(
    kind: Kind | str, samples: Sequence[Sample], *, seed: int = 0, tag_ids: Sequence[str] = ()
) -> Model:
    """Fit a model on ``samples``: classification learns from each sample's tag_ids, detection from
    its regions. ``tag_ids`` may name more tags (the project's); those without samples are
    predicted with probability 0. Samples whose image cannot be decoded are left out.
    Same samples, seed and tags -> same model."""
    _check_kind(kind)
    features, usable = _features_of(kind, samples)
    if kind == "ObjectDetection":
        return _train_detector(features, usable, seed=seed, extra_tags=tag_ids)
    return _train_classifier(kind, features, usable, extra_tags=tag_ids)


def _features_of(kind: str, samples: Sequence[Sample]) -> tuple[list[Any], list[Sample]]:
    extract = cell_grid if kind == "ObjectDetection" else image_vector
    features: list[Any] = []
    usable: list[Sample] = []
    for s in samples:
        checkpoint()
        try:
            features.append(extract(s.image))
        except UndecodableImageError:
            continue  # the service refuses such images on upload; one bad file must not stop training
        usable.append(s)
    return features, usable


def _all_tags(learned: Sequence[str], extra: Sequence[str]) -> list[str]:
    return sorted(set(learned).union(extra))


def _train_classifier(
    kind: str, vectors: Sequence[list[float]], samples: Sequence[Sample], *, extra_tags: Sequence[str] = ()
) -> Model:
    tags = _sample_tags(kind, samples)
    known = _all_tags(tags, extra_tags)
    index = {t: i for i, t in enumerate(tags)}
    rows: list[list[float]] = []
    targets: list[list[float]] = []
    for v, s in zip(vectors, samples):
        present = sorted({t for t in s.tag_ids if t in index})
        if kind == "Multiclass" and not present:
            continue  # an untagged image says nothing about which class it is
        t = [0.0] * len(tags)
        for tag in present:  # a multiclass image with several tags splits its vote
            t[index[tag]] = 1.0 / len(present) if kind == "Multiclass" else 1.0
        rows.append(v)
        targets.append(t)
    if not rows or (kind == "Multiclass" and len(tags) < 2):
        return Model(kind, known, None, scored_tag_ids=tags)
    if kind == "Multiclass":
        # balance the classes so a 90/10 project does not learn "always the big one"
        counts = [sum(t[k] for t in targets) for k in range(len(tags))]
        weights = [sum(tk / counts[k] for k, tk in enumerate(t) if tk) for t in targets]
        linear = _fit_linear(rows, targets, weights, loss="softmax", l2=1e-2)
    else:
        linear = _fit_linear(rows, targets, [1.0] * len(rows), loss="sigmoid", l2=1e-2)
    return Model(kind, known, linear, scored_tag_ids=tags)


def _train_detector(
    grids: Sequence[CellGrid], samples: Sequence[Sample], *, seed: int, extra_tags: Sequence[str] = ()
) -> Model:
    tags = _sample_tags("ObjectDetection", samples)
    known = _all_tags(tags, extra_tags)
    if not tags:
        return Model("ObjectDetection", known, None, scored_tag_ids=tags)
    sizes = _window_sizes([r for s in samples for r in s.regions])
    windows = _windows(sizes)
    rng = random.Random(seed)
    index = {t: i for i, t in enumerate([BACKGROUND, *tags])}
    rows: list[list[float]] = []
    labels: list[int] = []
    box_rows: list[list[float]] = []
    box_targets: list[list[float]] = []
    pools: list[list[list[float]]] = []  # unused background windows per image, for mining
    for grid, sample in zip(grids, samples):
        checkpoint()
        gts = [_box_corners(r) for r in sample.regions]
        negatives: list[_Window] = []
        partial: list[_Window] = []  # background windows on a part of an object: the hard ones
        near: list[list[tuple[float, _Window]]] = [[] for _ in gts]
        for win in windows:
            corners = _window_corners(win)
            overlaps = [_iou(corners, g) for g in gts]
            best = max(overlaps, default=0.0)
            if best < NEGATIVE_IOU:
                (partial if best >= PARTIAL_IOU else negatives).append(win)
            elif best >= REGRESS_IOU:
                near[overlaps.index(best)].append((best, win))
        for region, close in zip(sample.regions, near):
            close.sort(key=lambda c: (-c[0], c[1]))
            exact = _snap(region)
            label = index[region.tag_id]
            for win in [exact] + [w for o, w in close if o >= POSITIVE_IOU][:POSITIVES_PER_REGION]:
                rows.append(_window_vector(grid, win))
                labels.append(label)
            for win in [exact] + [w for _, w in close[:REGRESS_PER_REGION]]:
                box_rows.append(_window_vector(grid, win))
                box_targets.append(_box_deltas(win, region))
        rng.shuffle(negatives)
        rng.shuffle(partial)
        for win in negatives[:NEGATIVES_PER_IMAGE] + partial[:PARTIALS_PER_IMAGE]:
            rows.append(_window_vector(grid, win))
            labels.append(0)
        half = MINING_POOL // 2
        pool = negatives[NEGATIVES_PER_IMAGE:][:half] + partial[PARTIALS_PER_IMAGE:][:half]
        pools.append([_window_vector(grid, w) for w in pool])
    # the discriminant alone is good enough to rank background windows for mining
    linear = _fit_detector_scores(rows, labels, len(index), steps=0)
    # one round of hard-negative mining: the background windows the first model likes best are the
    # ones that teach it where objects are not (edges of objects, clutter, shadows)
    for vectors in pools:
        checkpoint()
        objectness = [1.0 - _softmax(linear.scores(v))[0] for v in vectors]
        ranked = sorted(((p, i) for i, p in enumerate(objectness)), key=lambda c: (-c[0], c[1]))
        for _, i in ranked[:HARD_NEGATIVES_PER_IMAGE]:
            rows.append(vectors[i])
            labels.append(0)
    linear = _fit_detector_scores(rows, labels, len(index), steps=DETECTOR_STEPS)
    boxes = _fit_linear(box_rows, box_targets, [1.0] * len(box_rows), loss="squared", l2=1e-1)
    return Model(
        "ObjectDetection", known, linear, scored_tag_ids=tags, window_sizes=sizes, box_regressor=boxes
    )


def _fit_detector_scores(
    rows: list[list[float]], labels: list[int], n_outputs: int, *, steps: int
) -> _Linear:
    counts = [labels.count(k) or 1 for k in range(n_outputs)]
    # every tag weighs as much as the background in total, whatever its count
    weights = [1.0 / counts[label] for label in labels]
    targets = [[1.0 if k == label else 0.0 for k in range(n_outputs)] for label in labels]
    return _fit_linear(rows, targets, weights, loss="softmax", l2=1e-2, warm_start=True, steps=steps)


def _box_deltas(win: _Window, region: RegionBox) -> list[float]:
    """Regression targets from a window to a region: centre shift in window sizes, log size ratio."""
    x0, y0, x1, y1 = _window_corners(win)
    w, h = x1 - x0, y1 - y0
    rw, rh = max(region.width, 1e-3), max(region.height, 1e-3)
    return [
        (region.left + rw / 2 - (x0 + w / 2)) / w,
        (region.top + rh / 2 - (y0 + h / 2)) / h,
        math.log(rw / w),
        math.log(rh / h),
    ]


def _apply_deltas(win: _Window, deltas: Sequence[float]) -> _Corners:
    x0, y0, x1, y1 = _window_corners(win)
    w, h = x1 - x0, y1 - y0
    # clamp: a linear regressor far outside its training range must not throw boxes off the image
    dx, dy = (max(-0.5, min(0.5, v)) for v in deltas[:2])
    dw, dh = (max(-0.7, min(0.7, v)) for v in deltas[2:4])
    cx, cy = x0 + w / 2 + dx * w, y0 + h / 2 + dy * h
    w, h = w * math.exp(dw), h * math.exp(dh)
    return (max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(1.0, cx + w / 2), min(1.0, cy + h / 2))


# --------------------------------------------------------------------------- evaluation


def _folds(kind: str, samples: Sequence[Sample], seed: int) -> list[list[int]]:
    """Stratified fold assignment: samples grouped by their rarest tag, shuffled with ``seed``,
    dealt round-robin; k = min(5, smallest tag count), at least 2."""
    tag_lists = [
        sorted({r.tag_id for r in s.regions}) if kind == "ObjectDetection" else sorted(set(s.tag_ids))
        for s in samples
    ]
    counts: dict[str, int] = {}
    for tl in tag_lists:
        for t in tl:
            counts[t] = counts.get(t, 0) + 1
    k = max(2, min([5, *counts.values()]))
    k = min(k, len(samples))
    groups: dict[str, list[int]] = {}
    for i, tl in enumerate(tag_lists):
        key = min(tl, key=lambda t: (counts[t], t)) if tl else ""
        groups.setdefault(key, []).append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    slot = 0
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        for i in members:
            folds[slot % k].append(i)
            slot += 1
    return folds


def _average_precision(scored: list[tuple[float, bool]], positives: int) -> float:
    """Area under the interpolated precision/recall curve (all points, as Pascal VOC 2010+)."""
    if positives == 0:
        return 0.0
    scored = sorted(scored, key=lambda s: -s[0])
    tp = 0
    points: list[tuple[float, float]] = []
    for i, (_, hit) in enumerate(scored, 1):
        tp += hit
        points.append((tp / positives, tp / i))
    ap, best_precision = 0.0, 0.0
    prev_recall = 0.0
    # walk from the right so precision is the running maximum at each recall
    envelope = []
    for recall, precision in reversed(points):
        best_precision = max(best_precision, precision)
        envelope.append((recall, best_precision))
    for recall, precision in reversed(envelope):
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def evaluate(
    kind: Kind | str,
    samples: Sequence[Sample],
    *,
    threshold: float = 0.5,
    seed: int = 0,
    overlap_threshold: float = 0.3,
) -> Performance:
    """Honest performance by stratified k-fold cross-validation: every sample is scored by a model
    that never saw it. Precision and recall at ``threshold`` (micro-averaged overall), average
    precision per tag and its mean overall. Detection matches boxes at IoU >= overlap_threshold."""
    _check_kind(kind)
    tags = _sample_tags(kind, samples)
    features, samples = _features_of(kind, samples)
    scored = cross_validate(kind, features, samples, seed=seed) if tags else []
    return summarise(kind, tags, [(samples[i], found) for i, _, found in scored],
                     threshold=threshold, overlap_threshold=overlap_threshold)


def cross_validate(
    kind: str,
    features: Sequence[Any],
    samples: Sequence[Sample],
    *,
    seed: int = 0,
    extra_tags: Sequence[str] = (),
    min_scored: int | None = None,
    max_train: int | None = None,
    max_scored: int | None = None,
) -> list[tuple[int, int, list[ScoredTag]]]:
    """(sample index, fold, predictions best first) of every held-out sample, fold by fold, each
    scored by a model fitted on the other folds (``features`` are the samples' own, decodable).

    Bounded for large projects, deterministically (same samples and seed, same subsets): folds are
    scored in order until ``min_scored`` samples were scored, a fold's model is fitted on at most
    ``max_train`` of the other samples and at most ``max_scored`` samples are scored in all. With no
    bounds, every sample is scored once (k-fold cross-validation)."""
    if len(samples) < 2:
        return []  # nothing to hold out: no honest number to give
    detection = kind == "ObjectDetection"
    out: list[tuple[int, int, list[ScoredTag]]] = []
    for f, fold in enumerate(_folds(kind, samples, seed)):
        if (min_scored is not None and len(out) >= min_scored) or (max_scored is not None and len(out) >= max_scored):
            break
        rng = random.Random(seed * 1_000_003 + f)
        if max_scored is not None and len(out) + len(fold) > max_scored:
            keep = set(rng.sample(fold, max(0, max_scored - len(out))))
            fold = [i for i in fold if i in keep]
        held = set(fold)
        train_idx = [i for i in range(len(samples)) if i not in held]
        if max_train is not None and len(train_idx) > max_train:
            train_idx = sorted(rng.sample(train_idx, max_train))
        train_s = [samples[i] for i in train_idx]
        train_f = [features[i] for i in train_idx]
        if detection:
            model = _train_detector(train_f, train_s, seed=seed, extra_tags=extra_tags)
        else:
            model = _train_classifier(kind, train_f, train_s, extra_tags=extra_tags)
        for i in fold:
            checkpoint()
            out.append((i, f, model._detect(features[i]) if detection else model._classify(features[i])))
    return out


def summarise(
    kind: str,
    tags: Sequence[str],
    scored: Sequence[tuple[Sample, Sequence[ScoredTag]]],
    *,
    threshold: float = 0.5,
    overlap_threshold: float = 0.3,
) -> Performance:
    """Performance of held-out predictions (sample with its truth, predictions best first) at a
    probability ``threshold``; detection boxes match regions at IoU >= ``overlap_threshold``.
    Cheap: a stored cross-validation answers any threshold at once."""
    # per tag: (probability, is a true positive) for every prediction, and the number of positives
    ranked: dict[str, list[tuple[float, bool]]] = {t: [] for t in tags}
    positives = {t: 0 for t in tags}
    for sample, found in scored:
        if kind == "ObjectDetection":
            _score_detection(found, sample, ranked, positives, overlap_threshold)
        else:
            truth = set(sample.tag_ids)
            predicted = {p.tag_id: p.probability for p in found}
            for t in tags:
                positives[t] += t in truth
                ranked[t].append((predicted.get(t, 0.0), t in truth))
    per_tag: dict[str, TagScore] = {}
    all_tp = all_fp = all_pos = 0
    for t in tags:
        tp = sum(1 for p, hit in ranked[t] if p >= threshold and hit)
        fp = sum(1 for p, hit in ranked[t] if p >= threshold and not hit)
        all_tp, all_fp, all_pos = all_tp + tp, all_fp + fp, all_pos + positives[t]
        per_tag[t] = TagScore(
            precision=tp / (tp + fp) if tp + fp else 0.0,
            recall=tp / positives[t] if positives[t] else 0.0,
            average_precision=_average_precision(ranked[t], positives[t]),
        )
    if not per_tag:
        return Performance(0.0, 0.0, 0.0, {})
    return Performance(
        precision=all_tp / (all_tp + all_fp) if all_tp + all_fp else 0.0,
        recall=all_tp / all_pos if all_pos else 0.0,
        average_precision=sum(s.average_precision for s in per_tag.values()) / len(per_tag),
        per_tag=per_tag,
    )


def _score_detection(
    found: Sequence[ScoredTag],
    sample: Sample,
    ranked: dict[str, list[tuple[float, bool]]],
    positives: dict[str, int],
    overlap_threshold: float,
) -> None:
    """Greedy matching, best box first: a box is a hit if it overlaps a not yet matched region of
    its tag by at least ``overlap_threshold``."""
    unmatched = [(r.tag_id, _box_corners(r)) for r in sample.regions]
    for r in sample.regions:
        if r.tag_id in positives:
            positives[r.tag_id] += 1
    for det in found:
        if det.box is None or det.tag_id not in ranked:
            continue
        corners = _box_corners(det.box)
        best, best_i = overlap_threshold, -1
        for i, (tag, gt) in enumerate(unmatched):
            if tag == det.tag_id:
                overlap = _iou(corners, gt)
                if overlap >= best:
                    best, best_i = overlap, i
        if best_i >= 0:
            unmatched.pop(best_i)
        ranked[det.tag_id].append((det.probability, best_i >= 0))
