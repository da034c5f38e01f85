"""Small parsers of the service's text: timestamps and ids (one copy for all of cvbulk)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["parse_timestamp", "is_uuid"]

# 2026-11-23T14:30:00.1234567Z: Azure writes up to 7 fractional digits and 'Z', which
# datetime.fromisoformat on Python 3.10 rejects (it takes 3 or 6 digits and no 'Z').
_TIMESTAMP = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d+))?"
    r"(?P<zone>Z|z|[+-]\d{2}:?\d{2})?"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}")


def parse_timestamp(text: str) -> datetime:
    """An aware datetime from the service's ISO 8601 text, on every supported Python.

    Takes any number of fractional digits (kept to the microsecond, truncated) and ``Z`` or an offset;
    a time without a zone is UTC (the service writes UTC). Raises ValueError on anything else.
    """
    match = _TIMESTAMP.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    frac = match["frac"]
    normal = match["base"] + ("." + (frac + "000000")[:6] if frac else "")
    zone = match["zone"]
    if zone is None or zone in ("Z", "z"):
        normal += "+00:00"
    else:
        normal += zone if ":" in zone else zone[:3] + ":" + zone[3:]
    moment = datetime.fromisoformat(normal)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def is_uuid(text: str) -> bool:
    """True for a UUID as the service writes it (8-4-4-4-12 hex digits) or as 32 hex digits.

    Surrounding white space is ignored; anything else (braces, partial hyphens) is not a UUID.
    """
    return isinstance(text, str) and _UUID.fullmatch(text.strip()) is not None
