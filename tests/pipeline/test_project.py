from __future__ import annotations

import pytest

from cvbulk.pipeline.errors import ConfigError as CLIError
from cvbulk.pipeline.project import (
    ProjectNotFound,
    TagMap,
    create_project,
    ensure_tags,
    find_or_create_project,
    is_detection_domain,
    project_domain,
    resolve_domain,
    resolve_project,
)


async def test_resolve_by_id_and_by_exact_name(training_client):
    p = await training_client.create_project("birds")
    assert (await resolve_project(training_client, p.id)).id == p.id
    assert (await resolve_project(training_client, "birds")).id == p.id
    with pytest.raises(ProjectNotFound) as err:
        await resolve_project(training_client, "Birds")  # exact names only
    assert not isinstance(err.value, CLIError)  # not a usage error: the CLI exits 3


async def test_two_projects_of_one_name_name_both_ids(training_client):
    a = await training_client.create_project("twin")
    b = await training_client.create_project("twin")
    with pytest.raises(CLIError) as err:
        await resolve_project(training_client, "twin")
    assert isinstance(err.value, CLIError)  # a usage error: the CLI exits 2
    assert a.id in str(err.value) and b.id in str(err.value)


async def test_unknown_id_is_not_found(training_client):
    with pytest.raises(ProjectNotFound):
        await resolve_project(training_client, "00000000-0000-0000-0000-000000000000")


async def test_create_only_when_asked_and_detection_gets_a_detection_domain(training_client):
    with pytest.raises(ProjectNotFound) as err:
        await find_or_create_project(training_client, "cutlery")
    assert err.value.options == ("create",)
    p, created = await find_or_create_project(training_client, "cutlery", create=True, detection=True)
    assert created
    assert is_detection_domain(await project_domain(training_client, p))
    again, created = await find_or_create_project(training_client, "cutlery", create=True, detection=True)
    assert again.id == p.id and not created


async def test_domain_by_name_or_id_and_classification_type(training_client):
    general = await resolve_domain(training_client, "general")
    assert general is not None and general.type == "Classification"
    assert (await resolve_domain(training_client, general.id)).id == general.id
    with pytest.raises(CLIError):
        await resolve_domain(training_client, "no such domain")
    p = await create_project(training_client, "ml", classification_type="multilabel", domain="General")
    assert p.settings.classification_type == "Multilabel"
    assert p.settings.domain_id == general.id
    with pytest.raises(CLIError):
        await create_project(training_client, "bad", classification_type="Binary")


async def test_ensure_tags_creates_missing_once_and_maps_by_name(training_client):
    p = await training_client.create_project("tags")
    await training_client.create_tag(p.id, "Hemlock")
    tags = await ensure_tags(training_client, p.id, ["Hemlock", "Japanese_Cherry", "hemlock"])
    assert {t.name for t in await training_client.get_tags(p.id)} == {"Hemlock", "Japanese_Cherry"}
    assert tags["hemlock"].id == tags["Hemlock"].id  # the service's names are case-insensitive
    again = await ensure_tags(training_client, p.id, ["Hemlock", "Japanese_Cherry"])
    assert {n: t.id for n, t in again.items()} == {n: tags[n].id for n in again}
    assert len(await training_client.get_tags(p.id)) == 2


async def test_names_that_differ_only_in_case_are_one_new_tag_for_the_limit_and_one_create(training_client):
    p = await training_client.create_project("case-twins")
    calls = 0
    real = training_client.create_tag

    async def counted(*args, **kw):
        nonlocal calls
        calls += 1
        return await real(*args, **kw)

    training_client.create_tag = counted
    tags = await ensure_tags(training_client, p.id, ["Oak", "oak", "OAK", "ash"], tag_limit=2)  # 2 tags, not 4
    assert calls == 2 and tags["Oak"].id == tags["oak"].id == tags["OAK"].id
    assert sorted(t.name.lower() for t in await training_client.get_tags(p.id)) == ["ash", "oak"]


async def test_tag_limit_checked_before_creating_any(training_client):
    p = await training_client.create_project("limited")
    with pytest.raises(CLIError) as err:
        await ensure_tags(training_client, p.id, [f"t{i}" for i in range(6)], tag_limit=5)
    assert "allows 5" in str(err.value)
    assert await training_client.get_tags(p.id) == []


async def test_tag_map_creates_an_unannounced_tag_once(training_client):
    p = await training_client.create_project("map")
    tm = TagMap(training_client, p.id, {})
    first = await tm.ids_for(["late", "late"])
    assert first[0] == first[1]
    assert [t.name for t in await training_client.get_tags(p.id)] == ["late"]
    dry = TagMap(None, "", {})
    assert await dry.ids_for(["new"]) == ("new",)
