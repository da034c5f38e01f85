"""Remove credentials from any text storage code shows: keys, SAS tokens, connection strings.

azure-core's exception messages can hold the request URL, SAS query included (``...&sig=...``), and a
connection string pasted in the wrong variable can end up in a ValueError. Every message a storage error
carries goes through :func:`scrub_secrets` first.
"""

from __future__ import annotations

import re
import threading

__all__ = ["scrub_secrets", "register_secret"]

# The secret values this process has been given (account keys, SAS tokens). Replaced literally wherever
# they turn up, whatever the form of the text around them.
_known: set[str] = set()
_lock = threading.Lock()

_PATTERNS = (
    # any URL query string: a SAS token lives there, and nothing in a query string helps a person read an error
    (re.compile(r"(https?://[^\s?#'\"<>]+)\?[^\s#'\"<>]*", re.IGNORECASE), r"\1?<redacted>"),
    # a SAS token outside a URL (an environment variable shown back, a loose query string)
    (re.compile(r"\bsig=[^&\s;'\"]*", re.IGNORECASE), "sig=<redacted>"),
    # connection string fields that hold secrets
    (re.compile(r"\b(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;\s'\"]*", re.IGNORECASE), r"\1=<redacted>"),
    # an Authorization header value (SharedKey account:signature, Bearer token)
    (re.compile(r"\b(SharedKey(?:Lite)?\s+[^:\s]+:|Bearer\s+)[^\s'\",]+", re.IGNORECASE), r"\1<redacted>"),
)


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`scrub_secrets` removes it from any text later on."""
    if value and len(value) >= 8:
        with _lock:
            _known.add(value)


def scrub_secrets(text: str) -> str:
    """``text`` without any key, SAS token, connection-string secret or Authorization value."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
