"""Region proposals (GetImageRegionProposals): class-agnostic boxes where something stands out.

The service proposes regions before any training, from a generic objectness model. The emulator
does the same on its trainer's detection grid: every window of the sliding-window grid is scored
by the ring-versus-inside colour contrast that the detector's ``_window_vector`` also describes (a
window whose inside differs strongly in colour from its surroundings likely frames an object), and
the detector's own non-maximum suppression keeps at most ``MAX_BOXES`` proposals, best first.
Synchronous and deterministic: run it in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import _trainer as tr
from ._features import CHANNELS, GRID, N_GRADIENT, cell_grid

__all__ = ["region_proposals"]

# Window sizes in grid cells: every width and height from 2 to 14 cells (an eighth to seven eighths
# of the side) up to an aspect ratio of 3, so that an object's own box is among the windows.
_STEPS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 14)
_SIZES = sorted({(w, h) for w in _STEPS for h in _STEPS if max(w, h) <= 3 * min(w, h)})
_WINDOWS = tr._windows(_SIZES)
_COLOURS = CHANNELS - N_GRADIENT  # the colour channels come first in a window vector
_HALF_CONFIDENCE = 0.25  # the contrast at which a proposal's confidence is 0.5
_MIN_CONFIDENCE = 0.05
_CANDIDATES = 300  # the best windows that go on to suppression (bounds its quadratic cost)


def _colour_sum(sums: Sequence[float], x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """The colour channels of ``CellGrid.window_sum`` (the summed-area table's four corners)."""
    k, row = CHANNELS, GRID + 1
    a, b, c, d = ((y * row + x) * k for y, x in ((y0, x0), (y0, x1), (y1, x0), (y1, x1)))
    n = _COLOURS
    return [vd - vb - vc + va for va, vb, vc, vd in zip(sums[a:a + n], sums[b:b + n], sums[c:c + n], sums[d:d + n])]


def _objectness(sums: Sequence[float], win: tuple[int, int, int, int]) -> float:
    """How much the window stands out: the colour difference between the ring around it and its
    inside (as in the detector's ``_window_vector``). Largest for the window that frames a uniform
    object on its background: a larger window mixes background into the inside, a smaller one
    mixes object into the ring."""
    x0, y0, x1, y1 = win
    area = (x1 - x0) * (y1 - y0)
    mx, my = max(1, (x1 - x0) // 3), max(1, (y1 - y0) // 3)
    ox0, oy0, ox1, oy1 = max(0, x0 - mx), max(0, y0 - my), min(GRID, x1 + mx), min(GRID, y1 + my)
    ring_area = (ox1 - ox0) * (oy1 - oy0) - area
    if ring_area <= 0:
        return 0.0
    inner = _colour_sum(sums, x0, y0, x1, y1)
    outer = _colour_sum(sums, ox0, oy0, ox1, oy1)
    return math.sqrt(sum(((o - i) / ring_area - i / area) ** 2 for o, i in zip(outer, inner)))


def region_proposals(image: bytes) -> list[tuple[float, tr.RegionBox]]:
    """(confidence 0..1, box in normalised coordinates), best first; raises
    ``UndecodableImageError`` for bytes Pillow cannot decode."""
    grid = cell_grid(image)
    scored: list[tuple[float, tuple[float, float, float, float]]] = []
    for win in _WINDOWS:
        if win[2] - win[0] == GRID and win[3] - win[1] == GRID:
            continue  # the whole image is not a proposal
        contrast = _objectness(grid.sums, win)
        confidence = contrast / (contrast + _HALF_CONFIDENCE)
        if confidence >= _MIN_CONFIDENCE:
            scored.append((confidence, tr._window_corners(win)))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [(round(p, 6), box) for p, box in tr._nms("", scored[:_CANDIDATES])]
