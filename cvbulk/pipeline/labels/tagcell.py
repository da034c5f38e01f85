"""THE separator rule of a manifest's ``tags`` cell, shared by the CSV writer and reader.

* Tags are separated by ``;`` (and only by ``;``: ``,`` and ``|`` are ordinary characters of a tag name).
* White space around an unquoted tag is dropped, and empty tags are ignored: ``cat; dog;`` is cat, dog.
* A tag is written between double quotes when it contains ``;`` or ``"``, or begins or ends with white
  space; a ``"`` inside it is doubled: ``"a;b"; "  lead"; "5"" screen"``. What is inside the quotes is
  the tag, exactly.
* A cell with an unclosed quote, or text after a closing quote, is malformed (:class:`ValueError`).

This sits inside the CSV quoting of the file itself (a cell with ``,`` or ``"`` is quoted once more by the
CSV writer); ``encode_tags`` / ``decode_tags`` are exact inverses for any tag without a control character.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SEPARATOR", "encode_tags", "decode_tags"]

SEPARATOR = ";"


def _needs_quotes(tag: str) -> bool:
    return SEPARATOR in tag or '"' in tag or tag != tag.strip() or not tag


def encode_tags(tags: Iterable[str]) -> str:
    return SEPARATOR.join('"' + t.replace('"', '""') + '"' if _needs_quotes(t) else t for t in tags)


def decode_tags(cell: str) -> list[str]:
    """The tags of a cell, in order, without duplicates; ValueError when the cell is malformed."""
    tags: list[str] = []
    i, n = 0, len(cell)
    while i <= n:
        while i < n and cell[i].isspace():
            i += 1
        if i < n and cell[i] == '"':
            start = i
            i += 1
            buf: list[str] = []
            while True:
                j = cell.find('"', i)
                if j < 0:
                    raise ValueError(f"unclosed quote in the tags cell (from character {start + 1})")
                buf.append(cell[i:j])
                if j + 1 < n and cell[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            tag = "".join(buf)
            while i < n and cell[i].isspace():
                i += 1
            if i < n and cell[i] != SEPARATOR:
                raise ValueError(f"text after a closing quote in the tags cell (character {i + 1})")
        else:
            j = cell.find(SEPARATOR, i)
            j = n if j < 0 else j
            tag = cell[i:j].strip()
            i = j
        if tag and tag not in tags:
            tags.append(tag)
        i += 1  # past the separator (or past the end)
    return tags
