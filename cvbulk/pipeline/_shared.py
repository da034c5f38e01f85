"""Small helpers the pipeline's modules share (one copy each).

TODO(client): engineer `client` adds ``cvbulk.client.parse_timestamp``, ``is_uuid`` and ``TIERS``; once
merged, import those here and drop these copies (the pipeline and the CLI must have one of each).
"""

from __future__ import annotations

import calendar
import re

__all__ = ["TIERS", "is_uuid", "parse_timestamp"]

#: The pricing tiers (their rates: cvbulk.client._ratelimit.TIER_RATES).
TIERS = ("F0", "S0", "unlimited")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Azure writes 7 fractional digits ("2026-11-23T14:30:00.1234567Z"), which fromisoformat refuses
# before Python 3.11: parsed by hand, the fraction cut to microseconds.
_STAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?$", re.IGNORECASE
)


def is_uuid(text: str) -> bool:
    return bool(_UUID.match(text.strip()))


def parse_timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of a service timestamp; None when absent, malformed, or without a zone
    (a time without a zone cannot be compared with ours safely)."""
    m = _STAMP.match((text or "").strip())
    if m is None or m.group(8) is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 62):
        return None
    fraction = float("0." + m.group(7)[:6]) if m.group(7) else 0.0
    zone = m.group(8).upper()
    offset = 0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds + fraction - offset
