"""Shared by the container tests: the sample tree put into an Azurite container (``put_blobs``)."""

from __future__ import annotations

from pathlib import Path

from tests._azurite import put_blobs

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples" / "ImageClassification" / "Images"


def sample_blobs(*, skip: str = "Test") -> dict[str, bytes]:
    """name -> bytes of the sample tree (tags = folders), without the ``skip`` folder."""
    out: dict[str, bytes] = {}
    for path in sorted(SAMPLES.rglob("*")):
        rel = path.relative_to(SAMPLES).as_posix()
        if path.is_file() and not rel.startswith(skip + "/"):
            out[rel] = path.read_bytes()
    return out


__all__ = ["put_blobs", "sample_blobs"]
