"""File names as data: one lossless key form for storage, one readable form for people.

On Linux a file name is bytes. Python hands a name that is not valid UTF-8 to us as a ``str`` with lone
surrogates (``os.fsdecode``, "surrogateescape": byte 0xE9 becomes U+DCE9). Such a string cannot be encoded
to UTF-8, so SQLite, JSON and a UTF-8 CSV reject it. Every name cvbulk stores goes through :func:`key_for`:

* the **key** is valid UTF-8, one line, and reversible (:func:`name_from_key` gives back the exact name);
* the **display** form (:func:`display_name`) is the key made safe for a terminal and unambiguous to a reader.

Key escapes (the only ones; every other character stands for itself, so a plain name is its own key)::

    \\\\      a backslash
    \\xHH    HH < 80: that control character (C0 or DEL, e.g. \\x0a for a newline in a name)
            HH >= 80: the raw byte HH of a name that is not valid UTF-8 (b"caf\\xe9.jpg" -> caf\\xe9.jpg)
    \\uHHHH  a C1 control character, or a lone surrogate that is not an escaped byte

Since an accented letter is stored as itself (``é``), ``\\xe9`` always means the raw byte: no two names
share a key.
"""

from __future__ import annotations

import os
import re
import unicodedata

__all__ = ["key_for", "name_from_key", "display_name", "is_clean_name", "clean_text", "fs_name"]

# Characters a key never holds as themselves.
_KEY_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_KEY_ESCAPE = re.compile(r"\\(?:\\|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")
# What a key may still hold that a terminal or a reader would get wrong: format characters (bidi
# overrides that reverse the rest of a line, zero-width characters), line and paragraph separators.
_DISPLAY_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Co", "Cn"})


def fs_name(name: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A name as Python's file system ``str`` (bytes decoded with surrogateescape)."""
    raw = os.fspath(name)
    return os.fsdecode(raw) if isinstance(raw, bytes) else raw


def _escape_key_char(m: re.Match[str]) -> str:
    c = m.group()
    code = ord(c)
    if c == "\\":
        return "\\\\"
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape carries it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def key_for(name: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """The lossless key of a file name or relative path: valid UTF-8, one line, reversible.

    A name that is valid UTF-8 with no backslash and no control character is its own key.
    """
    text = fs_name(name)
    return _KEY_UNSAFE.sub(_escape_key_char, text)


def _unescape_key(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        code = int(m.group(1), 16)
        return chr(code) if code < 0x80 else chr(0xDC00 + code)
    if m.group(2) is not None:
        return chr(int(m.group(2), 16))
    return "\\"


def name_from_key(key: str) -> str:
    """The exact file system name (surrogateescape ``str``) behind a key: ``name_from_key(key_for(n)) == n``."""
    return _KEY_ESCAPE.sub(_unescape_key, key)


def is_clean_name(name: str) -> bool:
    """True when ``name`` is its own key (valid UTF-8, no backslash, no control character)."""
    return _KEY_UNSAFE.search(name) is None


def clean_text(text: str) -> str:
    """``text`` with lone surrogates and control characters escaped as :func:`key_for` does, but a
    backslash left alone: idempotent, so a key (or a cell already cleaned) passes unchanged.

    For text cells that are not keys (tag names, reasons): always valid UTF-8 and one line.
    """
    if _KEY_UNSAFE.search(text) is None:
        return text
    return _KEY_UNSAFE.sub(lambda m: m.group() if m.group() == "\\" else _escape_key_char(m), text)


def _display_char(c: str) -> str:
    if unicodedata.category(c) in _DISPLAY_CATEGORIES:
        return f"\\u{ord(c):04x}"
    return c


def display_name(relpath: str) -> str:
    """The form of a key (a scan ``relpath``) to show a person: one line, no terminal control, readable.

    Undecodable bytes show as ``\\xHH``; invisible format characters (a right-to-left override that
    would make ``gpj.exe`` read as ``exe.jpg``) as ``\\uHHHH``; a leading or trailing space as ``\\x20``,
    so a name that ends in a space cannot pass for the name without it. A raw name with surrogates or
    control characters (given by mistake instead of its key) is escaped too, never printed as is.
    """
    text = clean_text(relpath)
    if any(unicodedata.category(c) in _DISPLAY_CATEGORIES for c in text if ord(c) > 0x7F):
        text = "".join(_display_char(c) for c in text)
    parts = text.split("/")
    for i, part in enumerate(parts):
        stripped = part.strip(" ")
        if stripped != part and part:
            lead = len(part) - len(part.lstrip(" "))
            trail = len(part) - len(part.rstrip(" "))
            if stripped:
                parts[i] = "\\x20" * lead + stripped + "\\x20" * trail
            else:
                parts[i] = "\\x20" * len(part)
    return "/".join(parts)
