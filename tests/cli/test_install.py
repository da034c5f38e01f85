"""A real, non-editable install: build the wheel from a copy of the checkout, install it into a fresh
virtual environment, and run `cvbulk demo` (both quickstarts) from an empty folder elsewhere.

This is what a user of `pip install cvbulk` gets: nothing of the checkout is on the path, so the demo
works only if the wheel carries the sample images. Slow by nature (about a minute: pip reuses its
cache for the dependencies), each step bounded by a timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 300
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".cvbulk", "cvbulk-demo*",
    "benchmarks", "tests", "node_modules", ".ruff_cache", ".mypy_cache",
)

pytestmark = pytest.mark.timeout(900)


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert result.returncode == 0, f"{' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("checkout") / "cvbulk"
    shutil.copytree(REPO, source, symlinks=True, ignore=_SKIP)  # a clean checkout: no build/ of ours
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)], cwd=source)
    (built,) = out.glob("cvbulk-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    # No pip inside the new environment (faster); this interpreter's pip installs into it.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)], cwd=venv.parent)
    yield venv


def test_the_wheel_carries_the_samples_their_licence_py_typed_and_our_licence(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cvbulk/py.typed" in names
    assert "cvbulk/samples/LICENSE.md" in names and "cvbulk/samples/od_regions.json" in names
    assert "cvbulk/samples/ImageClassification/Images/Test/test_image.jpg" in names
    assert sum(n.startswith("cvbulk/samples/ObjectDetection/Images/fork/") for n in names) == 20
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/", "examples/")) for n in names)


@pytest.mark.parametrize(("flags", "expected"), [((), "Hemlock"), (("--detection",), "fork")])
def test_demo_runs_from_an_empty_folder_after_pip_install(installed: Path, tmp_path: Path, flags, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISION_", "PYTHON", "CVBULK_"))}
    folder = tmp_path / "empty"
    folder.mkdir()
    result = _run([str(installed / "bin" / "cvbulk"), "demo", *flags], cwd=folder, env=env)
    assert f"as {expected}, as in the quickstart" in result.stdout, result.stdout[-1500:]
    assert str(REPO) not in result.stdout  # the samples came from the installed package, not the checkout
    assert "cvbulk --help" in result.stdout  # the closing hint points at something a pip user has
