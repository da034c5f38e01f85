"""A tiny reader for the block YAML that MLTable and data.yaml files use (mappings, sequences, scalars), so the
tests can check their structure without a YAML dependency. Not a general YAML parser."""

from __future__ import annotations

import json
from typing import Any


def _scalar(text: str) -> Any:
    t = text.strip()
    if t.startswith('"'):
        return json.loads(t)
    if t.startswith("'"):
        assert t.endswith("'"), t
        return t[1:-1].replace("''", "'")
    if " #" in t:
        t = t[: t.index(" #")].rstrip()
    if t in ("true", "false"):
        return t == "true"
    if t.lstrip("-").isdigit():
        return int(t)
    return t


def load(text: str) -> Any:
    lines = [(len(ln) - len(ln.lstrip(" ")), ln.strip()) for ln in text.splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    value, end = _block(lines, 0, lines[0][0] if lines else 0)
    assert end == len(lines), f"unparsed from line {end}: {lines[end:]}"
    return value


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- "):
        seq: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            inner = lines[i][1][2:]
            if ":" in inner and not inner.startswith(('"', "'")):
                # "- key: value" opens a mapping whose other keys sit 2 further in
                sub = [(indent + 2, inner), *lines[i + 1:]]
                item, used = _block(sub, 0, indent + 2)
                seq.append(item)
                i += used
            else:
                seq.append(_scalar(inner))
                i += 1
        return seq, i
    mapping: dict[Any, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        key, sep, rest = lines[i][1].partition(":")
        assert sep, f"expected 'key:' in {lines[i][1]!r}"
        k = _scalar(key)
        i += 1
        if rest.strip():
            mapping[k] = _scalar(rest)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[k], i = _block(lines, i, lines[i][0])
        elif i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            mapping[k], i = _block(lines, i, indent)
        else:
            mapping[k] = None
    return mapping, i
