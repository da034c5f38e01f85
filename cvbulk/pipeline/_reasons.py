"""One-line reasons: every per-item outcome (and every CLI error) is one line for a person."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(exc: BaseException, *, limit: int | None = None) -> str:
    """``exc`` as one line (white space folded), or its type's name when it says nothing."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if limit is None else text[:limit]
