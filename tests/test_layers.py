"""The import graph points down only: cli -> pipeline -> client; the emulator stands alone.

Every import of every module under cvbulk/ is read with ast (lazy imports inside functions count too),
so a layer that reaches up fails here before it confuses a reader or drags argparse into a library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cvbulk"

# What each layer may import of cvbulk (besides itself and the package root).
ALLOWED = {
    "cli": {"cli", "pipeline", "client", "emulator"},  # `cvbulk emulator`, `cvbulk demo` start one
    "pipeline": {"pipeline", "client", "storage"},
    "storage": {"storage"},
    "client": {"client"},
    "emulator": {"emulator"},
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cvbulk" else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, relative ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if not node.module:  # `from . import x`: x may be a sub-package of another layer
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(_module_name(path))
        if layer not in ALLOWED:
            continue  # cvbulk/__init__.py, __main__.py
        for line, target in _imports(path):
            other = _layer(target)
            if other is not None and (PACKAGE / other).is_dir() and other not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {layer} imports {target}")
    return bad


def test_layers_only_point_down():
    assert _violations() == []


def test_every_layer_is_known():
    layers = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert layers <= set(ALLOWED), f"a new layer needs a rule here: {layers - set(ALLOWED)}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "cvbulk"
    (fake / "pipeline").mkdir(parents=True)
    (fake / "cli").mkdir()
    (fake / "pipeline" / "x.py").write_text("def f():\n    from ..cli._common import CLIError\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _violations() == ["cvbulk/pipeline/x.py:2: pipeline imports cvbulk.cli._common"]


@pytest.mark.parametrize("module", ["cvbulk.pipeline.upload", "cvbulk.pipeline.predict",
                                    "cvbulk.pipeline.export", "cvbulk.pipeline.migrate"])
def test_a_job_imports_as_a_library(module):
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m == 'argparse' or m == 'cvbulk.cli' or m.startswith('cvbulk.cli.'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
