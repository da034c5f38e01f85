"""Region proposals (GetImageRegionProposals): class-agnostic boxes where something stands out.

The service proposes regions before any training, from a generic objectness model. The emulator
does the same with its trainer's detection features: every window of the sliding-window grid is
described by ``_window_vector`` (mean colour / edge channels inside, and how much the ring around
the window differs from the inside). A window whose inside differs strongly from its surroundings,
and has structure of its own, likely frames an object. The same non-maximum suppression as the
detector's turns the scored windows into at most ``MAX_BOXES`` proposals, best first.
Synchronous and deterministic: run it in a worker thread.
"""

from __future__ import annotations

import math

from . import _trainer as tr
from ._features import CHANNELS, GRID, N_GRADIENT, cell_grid

__all__ = ["region_proposals"]

# Window sizes in grid cells: squares and 1:2 / 2:1 boxes from an eighth to three quarters of
# the image side, the range the service's proposals cover.
_SIZES = sorted({(s, s) for s in (3, 4, 6, 8, 10, 12)} | {(a, b) for a, b in ((3, 6), (4, 8), (6, 12))}
                | {(b, a) for a, b in ((3, 6), (4, 8), (6, 12))})
_WINDOWS = tr._windows(_SIZES)
_HALF_CONFIDENCE = 0.25  # the contrast at which a proposal's confidence is 0.5
_MIN_CONFIDENCE = 0.05


def _objectness(vector: list[float]) -> float:
    """How much the window stands out: the colour/edge difference between its ring and its
    inside, a little more for windows with edges inside (an object, not a patch of sky)."""
    inner = vector[:CHANNELS]
    ring = vector[CHANNELS:2 * CHANNELS]
    contrast = math.sqrt(sum(v * v for v in ring))
    edges = sum(inner[-N_GRADIENT:]) / N_GRADIENT
    return contrast * (0.75 + 0.5 * min(1.0, edges * 4))


def region_proposals(image: bytes) -> list[tuple[float, tr.RegionBox]]:
    """(confidence 0..1, box in normalised coordinates), best first; raises
    ``UndecodableImageError`` for bytes Pillow cannot decode."""
    grid = cell_grid(image)
    scored: list[tuple[float, tuple[float, float, float, float]]] = []
    for win in _WINDOWS:
        if win[2] - win[0] == GRID and win[3] - win[1] == GRID:
            continue  # the whole image is not a proposal
        contrast = _objectness(tr._window_vector(grid, win))
        confidence = contrast / (contrast + _HALF_CONFIDENCE)
        if confidence >= _MIN_CONFIDENCE:
            scored.append((confidence, tr._window_corners(win)))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [(round(p, 6), box) for p, box in tr._nms("", scored)]
