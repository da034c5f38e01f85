"""redact(): secrets go as tokens and by place, never by blanking words out of prose."""

from __future__ import annotations

import pytest

from cvbulk.client import redact

STRONG = "3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b"


def test_a_key_that_is_a_common_word_leaves_the_word_in_prose():
    text = "the project name is wrong: wrong tag, wrong-headed, wrongly"
    assert redact(text, "wrong") == text
    assert redact("connection refused", "on") == "connection refused"


def test_a_word_like_key_is_still_hidden_where_it_stands_as_a_value():
    assert redact("GET /x?key=wrong&take=5", "wrong") == "GET /x?key=***&take=5"
    assert redact("Training-Key: wrong", "wrong") == "Training-Key: ***"
    assert redact("{'Prediction-Key': 'wrong', 'Accept': 'x'}", "wrong") == "{'Prediction-Key': '***', 'Accept': 'x'}"
    assert redact("token=wrong.", "wrong") == "token=***."
    assert redact('"password": "wrong"', "wrong") == '"password": "***"'


def test_a_key_that_looks_like_a_key_is_hidden_everywhere():
    assert redact(f"cannot connect with {STRONG} now", STRONG) == "cannot connect with *** now"
    assert redact(f"x{STRONG}y", STRONG) == "x***y"
    assert redact(f"https://h/p?k={STRONG}", STRONG) == "https://h/p?k=***"


def test_a_key_percent_encoded_in_a_url_is_hidden():
    key = "abc+def/ghi=jkl0123"
    assert redact("GET /x?code=abc%2Bdef%2Fghi%3Djkl0123", key) == "GET /x?code=***"
    assert redact("value abc%2Bdef%2Fghi%3Djkl0123 seen", key) == "value *** seen"


@pytest.mark.parametrize("text, expected", [
    ("https://acc.blob.core.windows.net/c/a.jpg?sv=2021-08-06&se=2026-12-01T00%3A00Z&sp=r&sig=AbC%2Bd%3D",
     "https://acc.blob.core.windows.net/c/a.jpg?sv=2021-08-06&se=2026-12-01T00%3A00Z&sp=r&sig=***"),
    ("https://acc.blob.core.windows.net/c?sig=AbC&sp=rl", "https://acc.blob.core.windows.net/c?sig=***&sp=rl"),
    ("DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=Zm9v+YmFy/==;EndpointSuffix=core.windows.net",
     "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=***;EndpointSuffix=core.windows.net"),
    ("BlobEndpoint=https://acc.blob.core.windows.net/;SharedAccessSignature=sv=2021&sig=AbC",
     "BlobEndpoint=https://acc.blob.core.windows.net/;SharedAccessSignature=***"),
    ("Endpoint=sb://x/;SharedAccessKeyName=root;SharedAccessKey=Zm9v=",
     "Endpoint=sb://x/;SharedAccessKeyName=root;SharedAccessKey=***"),
    ("GET /x?subscription-key=abc&take=5", "GET /x?subscription-key=***&take=5"),
    ("Ocp-Apim-Subscription-Key: abc", "Ocp-Apim-Subscription-Key: ***"),
    ("Authorization: Bearer eyJ0eXAi.eyJzdWIi.sig0", "Authorization: Bearer ***"),
])
def test_sas_tokens_connection_strings_and_key_headers_are_hidden_as_a_class(text, expected):
    assert redact(text) == expected


def test_prose_about_keys_and_signatures_is_kept():
    text = "the signature design: a key is needed (see AccountKeys docs); sign here"
    assert redact(text, "sign") == text


def test_none_and_empty_secrets_are_ignored():
    assert redact("nothing to hide", None, "") == "nothing to hide"
