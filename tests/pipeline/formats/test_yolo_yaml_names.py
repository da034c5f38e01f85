"""``data.yaml``'s ``names`` read back exactly by a YAML reader that follows the YAML spec (Ultralytics reads it
with PyYAML): an escape in a double-quoted YAML scalar is one code point, so a JSON surrogate pair
(``"\\ud83d\\ude00"``) is two lone surrogates there, not the emoji; and YAML folds U+0085, U+2028 and U+2029
as line breaks."""

from __future__ import annotations

import re

from cvbulk.pipeline.formats import ExportedImage, MemorySink, RegionLabel, write_yolo
from cvbulk.pipeline.labels.yolo import parse_yaml_names

NAMES = ["😀 emoji", "日本語", "café", 'quo"te', "back\\slash", "nel\x85x", "ls\u2028x", "c1\x9ax",
         "bom\ufeffx", "𝔘nicode math", "plain"]
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r",
            "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0", "L": "\u2028",
            "P": "\u2029"}
_HEX = {"x": 2, "u": 4, "U": 8}
# YAML 1.1/1.2: a double-quoted scalar holds printable characters; these are line breaks it folds.
_NOT_LITERAL = re.compile("[^\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029\ufeff]")


def yaml_double_quoted(text: str) -> str:
    """A double-quoted YAML scalar (one line) decoded as the YAML spec says: each escape is one code point."""
    assert text[0] == '"' and text[-1] == '"', text
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        assert ch != '"', f"an unescaped quote in {text!r}"
        assert not _NOT_LITERAL.match(ch), f"{ch!r} cannot stand literally in a YAML scalar: {text!r}"
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _HEX:
            n = _HEX[esc]
            out.append(chr(int(body[i + 2 : i + 2 + n], 16)))
            i += 2 + n
        else:
            out.append(_ESCAPES[esc])
            i += 2
    return "".join(out)


def test_every_name_reads_back_exactly_as_yaml_reads_it() -> None:
    images = [ExportedImage(f"{i:032x}", f"images/{i:032x}.jpg", 100, 100, (n,), (RegionLabel(n, 0.1, 0.1, 0.5, 0.5),))
              for i, n in enumerate(NAMES)]
    sink = MemorySink()
    write_yolo(images, "detection", sink)
    text = sink.files["data.yaml"]
    names = {}
    for line in text.splitlines():
        m = re.fullmatch(r"  (\d+): (.*)", line)
        if m:
            names[int(m.group(1))] = yaml_double_quoted(m.group(2))
    assert [names[i] for i in range(len(names))] == sorted(NAMES)
    assert parse_yaml_names(text) == sorted(NAMES)  # cvbulk's own reader too (upload --labels data.yaml)
