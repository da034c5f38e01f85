"""``folders``: the first folder level under ROOT is the tag (``Images/Hemlock/x.jpg`` -> ``Hemlock``).

Deeper folders are allowed; files directly under ROOT have no label. When ROOT holds the folder map a
``cvbulk export --format folders`` writes (``FOLDER_MAP_FILE``), a folder whose name had to be made safe
(too long, reserved, unsafe characters, a clash) is read back as the exact tag it stands for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._base import LabelProblem, Labels, check_tag, norm_rel

__all__ = ["FolderLabels", "FOLDER_MAP_FILE", "FOLDER_MAP_KEY"]

FOLDER_MAP_FILE = "cvbulk-folders.json"
FOLDER_MAP_KEY = "cvbulk_folder_tags"


def read_folder_map(root: Path) -> dict[str, str]:
    """folder name -> tag from ROOT's folder map; {} when there is none or it is not ours."""
    try:
        with open(root / FOLDER_MAP_FILE, encoding="utf-8", errors="surrogateescape") as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return {}
    mapping = data.get(FOLDER_MAP_KEY) if isinstance(data, dict) else None
    if not isinstance(mapping, dict):
        return {}
    return {str(k): v for k, v in mapping.items() if isinstance(v, str)}


class FolderLabels:
    """The first folder level under ROOT is the tag."""

    has_regions = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._map = read_folder_map(self.root)
        self._cache: dict[str, Labels | LabelProblem] = {}  # one result per folder, shared by its files

    def labels_for(self, relpath: str) -> Labels | LabelProblem | None:
        rel = norm_rel(relpath)
        head, sep, _ = rel.partition("/")
        if not sep or not head:
            return None  # a file directly under ROOT has no folder to name it
        found = self._cache.get(head)
        if found is None:
            tag = self._map.get(head, head)
            reason = check_tag(tag)
            found = Labels((tag,)) if reason is None else LabelProblem(f"folder {head!r}: {reason}")
            self._cache[head] = found
        return found

    def tag_names(self) -> list[str]:
        # Only the first level is read: a tag exists as soon as its folder does, whatever it holds.
        try:
            with os.scandir(self.root) as it:
                names = [
                    e.name for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=True)
                ]
        except OSError:
            return []
        tags = {self._map.get(n, n) for n in names}
        return sorted(t for t in tags if check_tag(t) is None)
