"""A SAS token pasted from a wrapped terminal or e-mail holds a line break or spaces inside it. A SAS token never
holds whitespace of its own (its values are percent-encoded), so it is taken without it. (It used to be kept:
listing worked through the SDK, then every ranged read and signed URL carried the break, and each image failed
HTTP 400 'a resume tries it again', which no resume fixed.)"""

from __future__ import annotations

import pytest

from cvbulk.storage import CredentialError, parse_connection_string, parse_location, resolve_settings

SAS = "se=2099-01-01T00%3A00%3A00Z&sp=rl&sv=2024-08-04&sr=c&sig=FAKESIGNATURE0123%3D"
WRAPPED = SAS[:30] + "\n" + SAS[30:]


def _taken_clean_or_refused(make) -> None:
    try:
        settings = make()
    except CredentialError:
        return
    assert settings.sas_token == SAS, repr(settings.sas_token)


def test_a_wrapped_sas_token_in_the_variable():
    location = parse_location("http://127.0.0.1:10000/devstoreaccount1/trees/")
    env = {"AZURE_STORAGE_ACCOUNT": "devstoreaccount1", "AZURE_STORAGE_SAS_TOKEN": WRAPPED}
    _taken_clean_or_refused(lambda: resolve_settings(location, env))


    text = f"BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature={WRAPPED.replace(chr(10), ' ')}"
    _taken_clean_or_refused(lambda: parse_connection_string(text))


def test_a_sas_token_with_a_leading_question_mark_and_a_trailing_newline_is_taken():  # passes today: kept so
    location = parse_location("http://127.0.0.1:10000/devstoreaccount1/trees/")
    env = {"AZURE_STORAGE_ACCOUNT": "devstoreaccount1", "AZURE_STORAGE_SAS_TOKEN": f"?{SAS}\n"}
    assert resolve_settings(location, env).sas_token == SAS
