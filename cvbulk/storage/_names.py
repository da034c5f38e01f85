"""Names inside a location: posix, relative, no '.' or '..' segments (a sink must not escape its root)."""

from __future__ import annotations

from .errors import LocationError

__all__ = ["check_name", "join_under"]

_MAX = 1024


def check_name(name: str) -> str:
    """``name`` if it is a safe relative posix name, else a :class:`LocationError`."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise LocationError(f"bad item name {name!r}: expected a relative path with '/' separators")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise LocationError(f"bad item name {name!r}: empty, '.' or '..' path segment")
    if len(name) > _MAX:
        raise LocationError(f"bad item name: longer than {_MAX} characters")
    return name


def join_under(under: str) -> str:
    """A relative folder for listing (``""`` or ending in ``/``)."""
    under = under.strip("/")
    return check_name(under) + "/" if under else ""
