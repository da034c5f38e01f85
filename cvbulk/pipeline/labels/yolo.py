"""YOLO (Ultralytics / darknet) detection labels: one ``.txt`` per image, ``class cx cy w h`` normalised.

``--labels`` names either a ``data.yaml`` (its ``names``, a list or an index map; label files sit where
Ultralytics looks for them: the image's last ``images`` folder replaced by ``labels``, under ROOT) or a
labels folder (``<folder>/<image path without a leading images/>.txt``; names from a ``data.yaml`` next to
it or above it, or a darknet ``classes.txt``/``obj.names``, one name a line).

An image whose label file is absent or empty is a background image: untagged (``decide`` skips it unless
``--untagged``). A segmentation line (``class x1 y1 x2 y2 ...``) is read as the box around its polygon.
Label files are read when their image is looked up, so a bad line is that image's LabelProblem.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

from ._base import LabelFileError, LabelProblem, Labels, RegionLabel, check_tag, make_region, norm_rel

__all__ = ["YoloLabels", "parse_yaml_names", "NAME_FILES"]

NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml", "classes.txt", "obj.names")


def _scalar(text: str) -> str:
    """A YAML scalar as flow text: a quoted one unquoted, a plain one without its comment."""
    t = text.strip()
    if t.startswith('"'):
        return str(json.loads(t[: _closing(t, '"') + 1]))
    if t.startswith("'"):
        return t[1: _closing(t, "'")].replace("''", "'")
    at = t.find(" #")
    return (t[:at] if at >= 0 else t).strip()


def _closing(t: str, q: str) -> int:
    i = 1
    while i < len(t):
        if q == '"' and t[i] == "\\":
            i += 2
            continue
        if t[i] == q:
            if q == "'" and i + 1 < len(t) and t[i + 1] == "'":
                i += 2
                continue
            return i
        i += 1
    raise ValueError("unclosed quote")


def _split_flow(body: str) -> list[str]:
    """``a, 'b, c', "d"`` -> its items (commas inside quotes kept)."""
    items: list[str] = []
    i, start = 0, 0
    while i < len(body):
        c = body[i]
        if c in "\"'" and not body[start:i].strip():
            i += _closing(body[i:], c) + 1
            continue
        if c == ",":
            items.append(body[start:i])
            start = i + 1
        i += 1
    if body[start:].strip():
        items.append(body[start:])
    return items


def parse_yaml_names(text: str) -> list[str]:
    """The ``names`` of a YOLO ``data.yaml``: the small YAML subset these files use (a flow or block list,
    a flow or block map of index -> name), without a YAML library. ValueError when there is none."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:"):].strip()
        pairs: list[tuple[int, str]] = []
        if rest.startswith("[") or rest.startswith("{"):
            close = "]" if rest[0] == "[" else "}"
            body = rest
            j = i
            while not body.rstrip().endswith(close) and j + 1 < len(lines):
                j += 1
                body += " " + lines[j].strip()
            items = _split_flow(body.strip()[1:-1])
            if rest[0] == "[":
                return [_scalar(x) for x in items]
            for item in items:
                k, _, v = item.partition(":")
                pairs.append((int(k.strip()), _scalar(v)))
        else:
            names: list[str] = []
            for sub in lines[i + 1:]:
                s = sub.strip()
                if not s or s.startswith("#"):
                    continue
                if not sub[:1].isspace() and not s.startswith("- "):
                    break
                if s.startswith("- "):
                    names.append(_scalar(s[2:]))
                else:
                    k, _, v = s.partition(":")
                    pairs.append((int(k.strip()), _scalar(v)))
            if names:
                return names
        if pairs:
            pairs.sort()
            if [k for k, _ in pairs] != list(range(len(pairs))):
                raise ValueError("names must be numbered 0, 1, 2, ... without gaps")
            return [v for _, v in pairs]
        raise ValueError("'names' is empty")
    raise ValueError("no 'names' in the file")


class YoloLabels:
    has_regions = True

    def __init__(self, spec: str | os.PathLike[str], root: str | os.PathLike[str]) -> None:
        self.spec = Path(spec)
        self.root = Path(root)
        self.labels_dir: Path | None = self.spec if self.spec.is_dir() else None
        names_file = self.spec if self.labels_dir is None else self._names_file(self.spec)
        self.names = self._read_names(names_file)

    @staticmethod
    def _names_file(folder: Path) -> Path:
        for base in (folder, folder.parent):
            for n in NAME_FILES:
                if (base / n).is_file():
                    return base / n
        raise LabelFileError(f"{folder.name}: a YOLO labels folder needs its class names ({' or '.join(NAME_FILES)})")

    @staticmethod
    def _read_names(path: Path) -> list[str]:
        try:
            text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
        except OSError as exc:
            raise LabelFileError(f"{path.name}: cannot read the class names: {exc.strerror}") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                names = parse_yaml_names(text)
            except (ValueError, json.JSONDecodeError) as exc:
                raise LabelFileError(f"{path.name}: {exc}") from None
        else:
            names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for i, n in enumerate(names):
            reason = check_tag(n)
            if reason is not None:
                raise LabelFileError(f"{path.name}: class {i}: {reason}")
        if not names:
            raise LabelFileError(f"{path.name}: no class names")
        return names

    def _label_file(self, rel: str) -> Path | None:
        stem = posixpath.splitext(rel)[0] + ".txt"
        parts = stem.split("/")
        if self.labels_dir is not None:
            if parts[0] == "images" and len(parts) > 1:
                parts = parts[1:]
            return self.labels_dir.joinpath(*parts)
        if "images" not in parts[:-1]:
            return None
        at = len(parts) - 2 - parts[:-1][::-1].index("images")
        parts[at] = "labels"
        return self.root.joinpath(*parts)

    def labels_for(self, relpath: str) -> Labels | LabelProblem | None:
        rel = norm_rel(relpath)
        path = self._label_file(rel)
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return Labels(())  # a background image
        except (OSError, UnicodeDecodeError) as exc:
            return LabelProblem(f"{path.name}: cannot read the label file ({exc.__class__.__name__})")
        regions: list[RegionLabel] = []
        for n, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            got = self._region(fields)
            if isinstance(got, str):
                return LabelProblem(f"{path.name}: line {n}: {got}")
            regions.append(got)
        return Labels(tuple(dict.fromkeys(r.tag for r in regions)), tuple(regions))

    def _region(self, fields: list[str]) -> RegionLabel | str:
        try:
            cls = int(fields[0])
            nums = [float(v) for v in fields[1:]]
        except ValueError:
            return "expected 'class cx cy w h' with an integer class and numbers"
        if not 0 <= cls < len(self.names):
            return f"class {cls} is not in the {len(self.names)} names"
        tag = self.names[cls]
        if len(nums) == 4:
            cx, cy, w, h = nums
            return make_region(tag, cx - w / 2, cy - h / 2, w, h)
        if len(nums) >= 6 and len(nums) % 2 == 0:
            xs, ys = nums[0::2], nums[1::2]
            return make_region(tag, min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        return f"expected 4 numbers after the class, found {len(nums)}"

    def tag_names(self) -> list[str]:
        return sorted(set(self.names))
