"""Nothing missed, nothing twice: what an export wrote, counted per tag, against what the service counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client import Tag, TrainingClient
    from .formats import ExportedImage

__all__ = ["check_counts", "count_exported"]


def count_exported(images: Sequence[ExportedImage]) -> tuple[Counter[str], int]:
    """Images per tag name (a region's tag counts once per image) and images without any tag."""
    per_tag: Counter[str] = Counter()
    untagged = 0
    for im in images:
        names = set(im.tags) | {r.tag for r in im.regions}
        per_tag.update(names)
        untagged += not names
    return per_tag, untagged


async def check_counts(
    client: TrainingClient, project_id: str, tags: Sequence[Tag], images: Sequence[ExportedImage], listed: int
) -> dict[str, Any]:
    """Compare the export with GetTaggedImageCount per tag, GetUntaggedImageCount and GetImageCount.

    ``listed``: how many images the run met while paging (an image added or deleted meanwhile shows as a
    difference too: run the export again). ``differences`` holds one line per mismatch; ``line`` one line
    for the user (None when all agree)."""
    per_tag, untagged = count_exported(images)
    service_tags = {t.name: await client.get_tagged_image_count(project_id, tag_ids=[t.id]) for t in tags}
    service_untagged = await client.get_untagged_image_count(project_id)
    service_total = await client.get_image_count(project_id)
    differences: list[str] = []
    for name in sorted(set(service_tags) | set(per_tag)):
        want, got = service_tags.get(name, 0), per_tag.get(name, 0)
        if want != got:
            differences.append(f"tag {name!r}: {want} in the project, {got} exported")
    if service_untagged != untagged:
        differences.append(f"untagged: {service_untagged} in the project, {untagged} exported")
    if service_total != len(images):
        differences.append(f"images: {service_total} in the project, {len(images)} exported")
    if listed != service_total:
        differences.append(f"images listed while paging: {listed}, the project counts {service_total} now")
    line = None
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        line = f"export does not match the project: {differences[0]}{more}"
    return {
        "ok": not differences,
        "line": line,
        "differences": differences,
        "project": {"images": service_total, "untagged": service_untagged, "per_tag": service_tags},
        "exported": {"images": len(images), "untagged": untagged, "per_tag": dict(sorted(per_tag.items()))},
    }
