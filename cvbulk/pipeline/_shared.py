"""The pipeline's view of the client's helpers: one timestamp parser, one ``is_uuid``, one tier table.

The parsers and the table live in ``cvbulk.client`` (``parse_timestamp``, ``is_uuid``, ``TIERS``); this
module only adapts them to what the jobs need (an epoch or None, the tier names in order).
"""

from __future__ import annotations

from ..client._text import is_uuid
from ..client._text import parse_timestamp as _parse_timestamp
from ..client._tiers import TIERS as _TIER_TABLE

__all__ = ["TIERS", "TAG_LIMITS", "epoch_or_none", "is_uuid", "parse_timestamp"]

#: The pricing tier names, in the client's order (F0, S0, unlimited).
TIERS: tuple[str, ...] = tuple(_TIER_TABLE)

#: Tags per project by pricing tier; None: no limit known.
TAG_LIMITS: dict[str, int | None] = {name: tier.max_tags_per_project for name, tier in _TIER_TABLE.items()}


def epoch_or_none(text: str | None) -> float | None:
    """Seconds since the epoch of a service timestamp; None when it is absent or not a timestamp.

    Azure's 7 fractional digits are read on every Python (``cvbulk.client.parse_timestamp``).
    """
    if not text:
        return None
    try:
        return _parse_timestamp(text).timestamp()
    except (ValueError, OverflowError):
        return None


#: The name send.py imports (an epoch or None, not the client's datetime).
parse_timestamp = epoch_or_none
