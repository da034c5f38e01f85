"""parse_timestamp and is_uuid: the one copy of each for all of cvbulk."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cvbulk.client import is_uuid, parse_timestamp

UTC = timezone.utc


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T14:30:00.1234567Z", datetime(2026, 11, 23, 14, 30, 0, 123456, UTC)),  # Azure's 7 digits
    ("2026-11-23T14:30:00Z", datetime(2026, 11, 23, 14, 30, tzinfo=UTC)),
    ("2026-11-23T14:30:00.1Z", datetime(2026, 11, 23, 14, 30, 0, 100000, UTC)),
    ("2026-11-23T14:30:00.123+00:00", datetime(2026, 11, 23, 14, 30, 0, 123000, UTC)),
    ("2026-11-23T14:30:00", datetime(2026, 11, 23, 14, 30, tzinfo=UTC)),  # no zone: UTC
    ("2026-11-23T16:30:00.5+0200", datetime(2026, 11, 23, 14, 30, 0, 500000, UTC)),
    (" 2026-11-23 14:30:00.999999999z ", datetime(2026, 11, 23, 14, 30, 0, 999999, UTC)),
])
def test_parse_timestamp_forms(text, expected):
    moment = parse_timestamp(text)
    assert moment == expected and moment.tzinfo is not None


def test_parse_timestamp_keeps_the_offset():
    moment = parse_timestamp("2026-11-23T16:30:00-05:00")
    assert moment.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-23T14:30:00.Z",
                                 "2026-11-23T14:30:00Zjunk"])
def test_parse_timestamp_rejects(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_parse_timestamp_orders_a_retried_upload_after_its_first_attempt():
    # the pipeline's case: the created time of an OKDuplicate against the time the attempt began
    began = parse_timestamp("2026-11-23T14:30:00.0000001Z")
    assert parse_timestamp("2026-11-23T14:30:00.5000000Z") > began


@pytest.mark.parametrize("text", [
    "0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
    " 0f8fad5b-d9cb-469f-a165-70867728950e\n", "0f8fad5bd9cb469fa16570867728950e",
])
def test_is_uuid_yes(text):
    assert is_uuid(text)


@pytest.mark.parametrize("text", [
    "", "birds", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb469f-a165-70867728950e",
    "{0f8fad5b-d9cb-469f-a165-70867728950e}", "0f8fad5b-d9cb-469f-a165-70867728950g",
    "my project 0f8fad5b-d9cb-469f-a165-70867728950e",
])
def test_is_uuid_no(text):
    assert not is_uuid(text)


def test_the_rest_of_cvbulk_uses_these_copies():
    """One parser, one is_uuid, one tier table: the CLI, the pipeline and the benchmarks point here."""
    import cvbulk.client as client
    from cvbulk.cli import _format
    from cvbulk.pipeline import _shared, project

    assert _format.is_uuid is client.is_uuid and _shared.is_uuid is client.is_uuid and project.is_uuid is client.is_uuid
    assert _shared.TIERS == tuple(client.TIERS) == ("F0", "S0", "unlimited")
    assert project.TAG_LIMITS == {name: t.max_tags_per_project for name, t in client.TIERS.items()}
    assert _shared.epoch_or_none("2026-11-23T14:30:00.1234567Z") == client.parse_timestamp(
        "2026-11-23T14:30:00.1234567Z").timestamp()
    assert _shared.epoch_or_none(None) is None and _shared.epoch_or_none("yesterday") is None
