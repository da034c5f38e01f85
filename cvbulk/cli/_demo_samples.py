"""The demo's sample images (shipped in the package as cvbulk/samples): the two quickstarts and where they are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._common import CLIError, ExitCode

__all__ = ["DemoVariant", "CLASSIFICATION", "DETECTION", "REGIONS_FILE", "find_samples"]


@dataclass(frozen=True)
class DemoVariant:
    """One of the two quickstarts, as the sample folders lay it out."""

    title: str
    images: str  # folder under the samples root holding one folder per tag and the test folder
    tags: tuple[str, ...]
    test_folder: str
    expected: str  # the tag the test image must come out as
    published_name: str  # as in Microsoft's quickstarts
    detection: bool


CLASSIFICATION = DemoVariant(
    title="image classification",
    images="ImageClassification/Images",
    tags=("Hemlock", "Japanese_Cherry"),
    test_folder="Test",
    expected="Hemlock",
    published_name="classifyModel",
    detection=False,
)
DETECTION = DemoVariant(
    title="object detection",
    images="ObjectDetection/Images",
    tags=("fork", "scissors"),
    test_folder="test",
    expected="fork",
    published_name="detectModel",
    detection=True,
)

REGIONS_FILE = "od_regions.json"


def _candidates(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    # Package data: a wheel carries them, so `pip install cvbulk` then `cvbulk demo` works anywhere.
    return [Path(__file__).resolve().parent.parent / "samples"]


def _missing(root: Path, variant: DemoVariant) -> list[str]:
    wanted = [f"{variant.images}/{tag}" for tag in variant.tags]
    wanted.append(f"{variant.images}/{variant.test_folder}")
    missing = [name for name in wanted if not (root / name).is_dir()]
    if variant.detection and not (root / REGIONS_FILE).is_file():
        missing.append(REGIONS_FILE)
    return missing


def find_samples(variant: DemoVariant, explicit: str | None = None) -> Path:
    """The samples folder (the package's own, or ``explicit``), or a one-line error saying where we looked."""
    looked: list[str] = []
    for root in _candidates(explicit):
        missing = _missing(root, variant)
        if not missing:
            return root.resolve()
        looked.append(f"{root} (missing {missing[0]})" if root.is_dir() else str(root))
    raise CLIError(
        "sample images not found; looked in " + "; ".join(looked)
        + ". Reinstall cvbulk (its wheel carries cvbulk/samples) or pass --samples DIR",
        ExitCode.USAGE,
    )
