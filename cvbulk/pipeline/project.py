"""Finding or creating the target project, and mapping tag names to tags.

Shared by ``upload`` and ``predict`` (and ``migrate``): a PROJECT argument is a project id or an exact
project name; tags are created once, before any image is sent, and looked up by name afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import anyio

from ..client._errors import BadRequestError, NotFoundError
from ._shared import TAG_LIMITS, is_uuid
from .errors import ConfigError, ProjectNotFound

if TYPE_CHECKING:  # the client is imported lazily so this module loads on its own
    from ..client import ClassificationType, Domain, Project, Tag, TagType, TrainingClient
    from .engine import ProgressSink

__all__ = [
    "TAG_LIMITS",
    "TagLimitError",
    "ProjectNotFound",
    "is_uuid",
    "resolve_project",
    "find_or_create_project",
    "create_project",
    "resolve_domain",
    "project_domain",
    "ensure_tags",
    "new_tag_names",
    "creating_tags_text",
    "TagMap",
]

_TAG_LIMIT_CODE = "BadRequestExceedTagPerProjectLimit"
_DETECTION = "ObjectDetection"
_CLASSIFICATION = "Classification"
_CLASSIFICATION_TYPES: dict[str, ClassificationType] = {"multiclass": "Multiclass", "multilabel": "Multilabel"}


async def resolve_project(client: TrainingClient, ref: str) -> Project:
    """The project ``ref`` names: an existing project id, or the one project with exactly that name.

    Two projects with the name: ConfigError naming both ids, since guessing could send a whole
    dataset to the wrong place. None: ProjectNotFound.
    """
    ref = ref.strip()
    if not ref:
        raise ConfigError("empty project name")
    if is_uuid(ref):
        try:
            return await client.get_project(ref)
        except NotFoundError:
            pass  # a name may look like an id: fall through to the names
    matches = [p for p in await client.get_projects() if p.name == ref]
    if len(matches) > 1:
        ids = ", ".join(p.id for p in matches)
        raise ConfigError(f"{len(matches)} projects are named {ref!r} ({ids}): pass the project id instead")
    if not matches:
        raise ProjectNotFound(f"no project with the id or name {ref!r}")
    return matches[0]


async def find_or_create_project(
    client: TrainingClient,
    ref: str,
    *,
    create: bool = False,
    domain: str | None = None,
    classification_type: str | None = None,
    detection: bool = False,
    progress: ProgressSink | None = None,
) -> tuple[Project, bool]:
    """``resolve_project``, or with ``create`` a new project named ``ref``; returns (project, created).
    ``progress`` hears "creating project ..." as a phase."""
    try:
        return await resolve_project(client, ref), False
    except ProjectNotFound:
        if not create:
            raise ProjectNotFound(
                f"no project with the id or name {ref!r} (pass {{opt:create}} to create it)"
            ) from None
    if is_uuid(ref):
        raise ConfigError(f"no project with the id {ref}; {{opt:create}} needs a name, not an id")
    if progress is not None:
        kind = "object-detection" if detection else "classification"
        progress.phase(f"creating {kind} project {ref!r}")
    project = await create_project(
        client,
        ref,
        domain=domain,
        classification_type=classification_type,
        detection=detection,
    )
    return project, True


async def resolve_domain(
    client: TrainingClient, ref: str | None, *, detection: bool = False
) -> Domain | None:
    """The domain named (case-insensitively) or identified by ``ref``, of the right type.

    Without ``ref``: the ``General`` object-detection domain for detection, None (the service's
    default, General classification) otherwise.
    """
    if ref is None and not detection:
        return None
    domains = await client.get_domains()
    wanted_type = _DETECTION if detection else _CLASSIFICATION
    if ref is not None and is_uuid(ref):
        for d in domains:
            if d.id.lower() == ref.lower():
                return d
        raise ConfigError(f"no domain with the id {ref} (see `cvbulk domains`)")
    name = (ref or "General").strip().lower()
    typed = [d for d in domains if (getattr(d, "type", None) or "") == wanted_type]
    for d in typed:
        if d.name.lower() == name:
            return d
    others = [d for d in domains if d.name.lower() == name]
    if others:
        kind = "object detection" if detection else "classification"
        raise ConfigError(f"domain {ref!r} is not a {kind} domain (see `cvbulk domains`)")
    raise ConfigError(f"no domain named {ref or 'General'!r} (see `cvbulk domains`)")


async def create_project(
    client: TrainingClient,
    name: str,
    *,
    domain: str | None = None,
    classification_type: str | None = None,
    detection: bool = False,
    description: str | None = None,
) -> Project:
    """Create a project; ``detection`` picks an object-detection domain (``General`` unless named)."""
    kind: ClassificationType | None = None
    if classification_type is not None:
        kind = _CLASSIFICATION_TYPES.get(classification_type.strip().lower())
        if kind is None:
            raise ConfigError(
                f"classification type must be Multiclass or Multilabel, not {classification_type!r}"
            )
    found = await resolve_domain(client, domain, detection=detection)
    if found is not None and (getattr(found, "type", None) == _DETECTION) != detection and domain:
        detection = getattr(found, "type", None) == _DETECTION
    return await client.create_project(
        name,
        description=description,
        domain_id=found.id if found is not None else None,
        classification_type=None if detection else kind,
    )


async def project_domain(client: TrainingClient, project: Project) -> Domain | None:
    """The project's domain record (None when the project names none or it is unknown)."""
    settings = getattr(project, "settings", None)
    domain_id = getattr(settings, "domain_id", None)
    if not domain_id:
        return None
    try:
        return await client.get_domain(domain_id)
    except NotFoundError:
        return None


def is_detection_domain(domain: Domain | None) -> bool:
    return domain is not None and getattr(domain, "type", None) == _DETECTION


_LIMIT_IN_MESSAGE = re.compile(r"(\d+)")


async def ensure_tags(
    client: TrainingClient,
    project_id: str,
    names: Iterable[str],
    *,
    tag_limit: int | None = None,
    concurrency: int = 4,
    existing: Sequence[Tag] | None = None,
    progress: ProgressSink | None = None,
    tier: str | None = None,
    types: Mapping[str, str] | None = None,
) -> dict[str, Tag]:
    """Every tag in ``names``, created where missing, keyed by the names asked for; ``types``: the type to
    create a tag with when not Regular (a Negative tag read back from an export).

    Names match existing tags case-insensitively (the service refuses two tags that differ only in
    case). The tier's tag limit is checked before anything is created; the service's own 400
    ``BadRequestExceedTagPerProjectLimit`` is turned into the same clear error. ``existing``: the
    project's tags when the caller has just listed them (saves a GetTags). ``progress`` hears
    "creating 40 tags (F0: 2 calls/s, about 20 s)" before they are created (``tier`` names the rate).
    """
    wanted = sorted({n for n in names if n})
    if existing is None:
        existing = await client.get_tags(project_id)
    by_lower = {t.name.lower(): t for t in existing}
    missing = new_tag_names(wanted, by_lower)  # "Hemlock" and "hemlock": one tag, created once
    if tag_limit is not None and len(existing) + len(missing) > tag_limit:
        raise TagLimitError(
            f"{len(existing) + len(missing)} tags ({len(existing)} now, {len(missing)} new) but its tier allows {tag_limit}"
        )
    created: dict[str, Tag] = {}
    limit = anyio.CapacityLimiter(max(1, concurrency))

    async def create(name: str) -> None:
        async with limit:
            created[name] = await _create_tag(
                client, project_id, name, len(existing) + len(missing), (types or {}).get(name)
            )

    if missing and progress is not None:
        progress.phase(creating_tags_text(client, len(missing), tier))
    if missing:
        async with anyio.create_task_group() as tg:
            for name in missing:
                tg.start_soon(create, name)
    made = {name.lower(): tag for name, tag in created.items()}
    out: dict[str, Tag] = {}
    for n in wanted:
        tag = made.get(n.lower()) or by_lower.get(n.lower())
        if tag is None:  # created by someone else between our list and our create
            tag = {t.name.lower(): t for t in await client.get_tags(project_id)}[n.lower()]
        out[n] = tag
    return out


def new_tag_names(names: Iterable[str], existing: Iterable[str]) -> list[str]:
    """``names`` not in ``existing``, each once, compared as the service compares tag names: without case
    ("Hemlock" and "hemlock" are one tag)."""
    seen = {n.lower() for n in existing}
    out = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


def creating_tags_text(client: Any, n: int, tier: str | None = None) -> str:
    """``creating 40 tags (F0: 2 calls/s, about 20 s)``: the count, the pace and the time it takes (one
    CreateTag call per tag at the client's training rate)."""
    noun = "tag" if n == 1 else "tags"
    rate = None
    pacer = getattr(client, "pacer", None)
    if pacer is not None:
        from ..client import ApiGroup

        limiter = pacer.limiter(ApiGroup.TRAINING)
        rate = getattr(limiter, "rate", None)
    if not rate:
        return f"creating {n} {noun}"
    seconds = n / rate
    pace = f"{tier + ': ' if tier else ''}{rate:g} calls/s"
    if seconds < 2:
        return f"creating {n} {noun} ({pace})"
    about = f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"
    return f"creating {n} {noun} ({pace}, {about})"


class TagLimitError(ConfigError):
    """The project would pass its tier's tags-per-project limit; ``would``: what it would have against what the tier
    allows (``51 tags (50 now, 1 new) but its tier allows 50``)."""

    def __init__(self, would: str) -> None:
        super().__init__(f"the project would have {would}; nothing was uploaded")
        self.would = would


async def _create_tag(
    client: TrainingClient, project_id: str, name: str, would_have: int, type: str | None = None
) -> Tag:
    try:
        if type is None:  # (a Regular tag: the service's default, asked as every client can)
            return await client.create_tag(project_id, name)
        return await client.create_tag(project_id, name, type=cast("TagType", type))
    except BadRequestError as exc:
        if exc.code == _TAG_LIMIT_CODE:
            numbers = _LIMIT_IN_MESSAGE.findall(exc.message or "")
            allowed = f"allows {numbers[-1]}" if numbers else "allows fewer"
            raise TagLimitError(f"{would_have} tags but its tier {allowed} (the service said: {exc.message})") from None
        if exc.code == "BadRequestTagNameNotUnique":
            for t in await client.get_tags(project_id):
                if t.name.lower() == name.lower():
                    return t
        if exc.code == "BadRequestTagName":
            raise ConfigError(f"the service refuses the tag name {name!r}: {exc.message}") from None
        raise


class TagMap:
    """Tag name -> id for the run, with creation on demand for a name the label source did not
    announce up front (created once, under a lock)."""

    def __init__(
        self, client: TrainingClient | None, project_id: str, tags: Mapping[str, Any]
    ) -> None:
        self._client = client
        self._project_id = project_id
        self._ids = {name: tag.id for name, tag in tags.items()}
        self._lower = {name.lower(): tid for name, tid in self._ids.items()}
        self._lock = anyio.Lock()

    def get(self, name: str) -> str | None:
        return self._ids.get(name) or self._lower.get(name.lower())

    @property
    def names(self) -> dict[str, str]:
        """tag id -> name (for reports)."""
        return {tid: name for name, tid in self._ids.items()}

    async def ids_for(self, names: Iterable[str]) -> tuple[str, ...]:
        out = []
        for name in names:
            tid = self.get(name)
            if tid is None:
                tid = await self._create(name)
            out.append(tid)
        return tuple(out)

    async def _create(self, name: str) -> str:
        async with self._lock:
            tid = self.get(name)
            if tid is not None:
                return tid
            if self._client is None:
                # Nothing may be created (a dry run): the name stands for the tag to come.
                self._ids[name] = self._lower[name.lower()] = name
                return name
            tag = (await ensure_tags(self._client, self._project_id, [name]))[name]
            self._ids[name] = tag.id
            self._lower[name.lower()] = tag.id
            return tag.id
