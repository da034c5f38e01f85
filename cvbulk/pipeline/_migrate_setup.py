"""Migrate's set-up: the target project (found, or created with the source's settings) and the tag map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import anyio

from ..client import BadRequestError
from .errors import ConfigError, ProjectNotFound
from .project import is_detection_domain, is_uuid, project_domain, resolve_project

if TYPE_CHECKING:
    from ..client import Domain, Project, Tag, TagType, TrainingClient

__all__ = ["target_project", "TagMapper"]


async def _target_domain(target: TrainingClient, source_domain: Domain | None) -> str | None:
    """The target's domain matching the source's: the same id (Azure's domain ids are global), else the
    same name and type (another cloud), else a clear error."""
    if source_domain is None:
        return None
    domains = await target.get_domains()
    for d in domains:
        if (d.id or "").lower() == (source_domain.id or "").lower():
            return d.id
    for d in domains:
        if d.name == source_domain.name and d.type == source_domain.type:
            return d.id
    raise ConfigError(
        f"the target has no domain like the source's {source_domain.name!r} ({source_domain.type}); "
        "create the target project yourself and pass it with {opt:to_project}"
    )


async def target_project(
    source: TrainingClient,
    target: TrainingClient,
    source_project: Project,
    ref: str,
    *,
    create: bool,
) -> tuple[Project, bool]:
    """The target project ``ref`` names, or with ``create`` a new one with the source's settings
    (domain, classification type, export platforms, description). Returns (project, created)."""
    source_domain = await project_domain(source, source_project)
    detection = is_detection_domain(source_domain)
    try:
        project = await resolve_project(target, ref)
    except ProjectNotFound:
        if not create:
            raise ProjectNotFound(
                f"no project with the id or name {ref!r} on the target (pass {{opt:create}} to create it)"
            ) from None
        if is_uuid(ref):
            raise ConfigError(f"no project with the id {ref} on the target; {{opt:create}} needs a name, not an id") from None
        settings = source_project.settings
        project = await target.create_project(
            ref,
            description=source_project.description or None,
            domain_id=await _target_domain(target, source_domain),
            classification_type=None if detection else getattr(settings, "classification_type", None),
            target_export_platforms=getattr(settings, "target_export_platforms", None) or None,
        )
        return project, True
    if is_detection_domain(await project_domain(target, project)) != detection:
        kind = "an object-detection" if detection else "a classification"
        raise ConfigError(
            f"the source is {kind} project but the target {project.name!r} is not; "
            "pick a target of the same kind (or {opt:create} a new one)"
        )
    return project, False


class TagMapper:
    """Source tag id -> target tag id, by name (case-insensitive, as the service compares them).

    Missing tags are created once, with the source's description and type; a tag the source gains while
    the run goes is created the first time an image names it.
    """

    def __init__(self, target: TrainingClient, project_id: str) -> None:
        self.target = target
        self.project_id = project_id
        self._ids: dict[str, str] = {}
        self._by_lower: dict[str, Tag] = {}
        self.created: list[str] = []
        self._lock = anyio.Lock()

    async def load(self, source_tags: Sequence[Tag], *, concurrency: int = 4) -> None:
        self._by_lower = {t.name.lower(): t for t in await self.target.get_tags(self.project_id)}
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(tag: Tag) -> None:
            async with limiter:
                self._ids[tag.id] = await self._ensure(tag.name, tag.description, tag.type)

        async with anyio.create_task_group() as tg:
            for tag in source_tags:
                tg.start_soon(one, tag)

    def get(self, source_tag_id: str) -> str | None:
        return self._ids.get(source_tag_id)

    async def resolve(self, source_tag_id: str, name: str | None) -> str:
        found = self._ids.get(source_tag_id)
        if found is not None:
            return found
        if not name:
            raise ConfigError(f"an image names a tag ({source_tag_id}) the source does not list")
        async with self._lock:
            if source_tag_id not in self._ids:
                self._ids[source_tag_id] = await self._ensure(name, None, None)
            return self._ids[source_tag_id]

    async def _ensure(self, name: str, description: str | None, type_: str | None) -> str:
        existing = self._by_lower.get(name.lower())
        if existing is not None:
            return existing.id
        try:
            tag = await self.target.create_tag(
                self.project_id, name, description=description or None,
                type=cast("TagType", type_) if type_ and type_ != "Regular" else None,
            )
        except BadRequestError as exc:
            if exc.code == "BadRequestTagNameNotUnique":
                for t in await self.target.get_tags(self.project_id):
                    if t.name.lower() == name.lower():
                        self._by_lower[name.lower()] = t
                        return t.id
            if exc.code == "BadRequestExceedTagPerProjectLimit":
                raise ConfigError(f"the target project cannot take another tag ({name!r}): {exc.message}") from None
            raise
        self._by_lower[name.lower()] = tag
        self.created.append(name)
        return tag.id
