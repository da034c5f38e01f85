"""``export --to``'s default state file is one per place (account, container, prefix), however OUT is typed: the
az:// form, the account's https URL, Azurite's path-style URL, a trailing slash or a SAS token in it all resume
the same export. Keyed by the text as typed, a second spelling downloaded and wrote everything again."""

from __future__ import annotations

from cvbulk.pipeline.export import ExportOptions, default_state_file
from cvbulk.storage import parse_location

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE = {
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
}
SAS = "se=2099-01-01T00%3A00%3A00Z&sp=wl&sv=2024-08-04&sr=c&sig=FAKESIGNATURE0123%3D"


def _state(out: str, environ: dict[str, str]) -> str:
    return str(default_state_file(parse_location(out), environ))


def test_every_spelling_of_a_place_has_one_state_file():
    spellings = [
        "az://exports/trees",
        "az://exports/trees/",
        "http://127.0.0.1:10000/devstoreaccount1/exports/trees",
        "http://localhost:10000/devstoreaccount1/exports/trees/",
        f"http://127.0.0.1:10000/devstoreaccount1/exports/trees?{SAS}",
    ]
    states = {_state(out, AZURITE) for out in spellings}
    assert len(states) == 1, states
    assert not any("sig=" in s or KEY[:10] in s for s in states)


def test_another_prefix_container_or_account_is_another_state_file():
    one = _state("az://exports/trees", AZURITE)
    assert _state("az://exports/birds", AZURITE) != one
    assert _state("az://other/trees", AZURITE) != one
    assert _state("https://contoso.blob.core.windows.net/exports/trees", {"AZURE_STORAGE_KEY": KEY}) != one


def test_the_options_take_the_credentials_they_are_given():
    options = ExportOptions(project="p", out_dir="az://exports/trees", storage_environ=AZURITE)
    assert str(options.state) == _state("http://127.0.0.1:10000/devstoreaccount1/exports/trees/", AZURITE)
