"""The secret guard for everything cvbulk writes (reports, state files): drop credential fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["scrub_keys"]

# Field names that hold credentials: "key", "api_key", "Prediction-Key", "apiKey", "secret", "password".
# A tag such as "monkey" or "keyboard" used as a field name is kept.
_SECRET_WORDS = ("key", "secret", "password")


def _is_secret_field(name: str) -> bool:
    lowered = name.lower()
    for word in _SECRET_WORDS:
        if lowered == word:
            return True
        if lowered.endswith(word):
            start = len(name) - len(word)
            if name[start - 1] in "_-. " or name[start].isupper():
                return True
    return False


def scrub_keys(value: Any) -> Any:
    """A copy of ``value`` without any mapping field named like a credential (any depth)."""
    if isinstance(value, Mapping):
        return {str(k): scrub_keys(v) for k, v in value.items() if not _is_secret_field(str(k))}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub_keys(v) for v in value]
    return value
