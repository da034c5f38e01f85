"""names: the lossless key of a file name, and the form shown to a person."""

from __future__ import annotations

import os

import pytest

from cvbulk.pipeline.names import clean_text, display_name, is_clean_name, key_for, name_from_key


@pytest.mark.parametrize(
    "raw,key",
    [
        (b"plain/photo.jpg", "plain/photo.jpg"),
        ("été/日本.png".encode(), "été/日本.png"),
        (b"caf\xe9.jpg", "caf\\xe9.jpg"),
        (b"back\\slash", "back\\\\slash"),
        (b"new\nline", "new\\x0aline"),
        (b"esc\x1b[2J", "esc\\x1b[2J"),
        ("c1\u0085".encode(), "c1\\u0085"),
        (b"trail ", "trail "),
    ],
)
def test_key_for_and_back(raw: bytes, key: str) -> None:
    assert key_for(raw) == key == key_for(os.fsdecode(raw))
    assert os.fsencode(name_from_key(key)) == raw
    key.encode("utf-8")


def test_literal_escape_text_does_not_collide_with_a_raw_byte() -> None:
    assert key_for(b"caf\\xe9") != key_for(b"caf\xe9")
    assert key_for("café") != key_for(b"caf\xe9")


def test_clean_text_is_idempotent_and_keeps_backslashes() -> None:
    raw = os.fsdecode(b"t\xff\tx\\y")
    once = clean_text(raw)
    assert once == "t\\xff\\x09x\\y" and clean_text(once) == once
    assert clean_text("plain") == "plain" and is_clean_name("plain") and not is_clean_name(raw)


def test_display_name() -> None:
    assert display_name("caf\\xe9.jpg") == "caf\\xe9.jpg"
    assert display_name("photo.jpg ") == "photo.jpg\\x20"
    assert display_name("a\u202eb") == "a\\u202eb"
    assert display_name("   ") == "\\x20\\x20\\x20"
    assert display_name("ok/日本.png") == "ok/日本.png"
