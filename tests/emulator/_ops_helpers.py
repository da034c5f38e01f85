"""A trained project on a running emulator, for the operation tests (sync, with requests)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .conftest import SAMPLES

COMPACT_CLASSIFICATION = "0732100f-1a38-4e49-a514-c9b44c697ab5"  # General (compact): exportable
GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
TREES = SAMPLES / "ImageClassification" / "Images"


@dataclass
class Client:
    emu: object
    s: requests.Session = field(default_factory=requests.Session)

    @property
    def t(self) -> str:
        return f"{self.emu.endpoint}/customvision/v3.3/training"  # type: ignore[attr-defined]

    def call(self, method: str, path: str, expect: int | None = 200, **kw) -> requests.Response:
        headers = {"Training-Key": self.emu.training_key, **kw.pop("headers", {})}  # type: ignore[attr-defined]
        resp = self.s.request(method, self.t + path, headers=headers, timeout=60, **kw)
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text[:500])
        return resp

    def json(self, method: str, path: str, expect: int = 200, **kw):
        return self.call(method, path, expect, **kw).json()

    def wait(self, pid: str, iteration: dict, limit: float = 60.0) -> dict:
        deadline = time.monotonic() + limit
        while iteration["status"] == "Training":
            assert time.monotonic() < deadline, "training did not finish"
            time.sleep(0.05)  # a poll, as a client does
            iteration = self.json("GET", f"/projects/{pid}/iterations/{iteration['id']}")
        assert iteration["status"] == "Completed", iteration
        return iteration


@dataclass
class Trees:
    """A Multiclass project (compact domain) with 10 Hemlock + 10 Japanese Cherry images, trained,
    plus untagged images: the test image (a hemlock) and a cherry copy."""

    pid: str
    iteration: dict
    tags: dict[str, str]
    untagged: dict[str, str]  # name -> image id


def upload(c: Client, pid: str, files: list[Path], tag_ids: list[str] | None = None) -> list[dict]:
    multipart = [("imageData", (f.name, f.read_bytes(), "application/octet-stream")) for f in files]
    params = {"tagIds": ",".join(tag_ids)} if tag_ids else None
    body = c.call("POST", f"/projects/{pid}/images", params=params, files=multipart).json()
    assert body["isBatchSuccessful"], body
    return [i["image"] for i in body["images"]]


def trained_trees(c: Client) -> Trees:
    pid = c.json("POST", "/projects", params={"name": "trees", "domainId": COMPACT_CLASSIFICATION,
                                              "classificationType": "Multiclass"})["id"]
    tags = {}
    for folder, name in (("Hemlock", "Hemlock"), ("Japanese_Cherry", "Japanese Cherry")):
        tags[name] = c.json("POST", f"/projects/{pid}/tags", params={"name": name})["id"]
        files = sorted((TREES / folder).glob("*.jpg"))
        upload(c, pid, files[:-1], [tags[name]])
    untagged = {}
    held_back = [TREES / "Test" / "test_image.jpg", sorted((TREES / "Japanese_Cherry").glob("*.jpg"))[-1]]
    for f, image in zip(held_back, upload(c, pid, held_back)):
        untagged[f.parent.name] = image["id"]
    iteration = c.wait(pid, c.json("POST", f"/projects/{pid}/train"))
    return Trees(pid, iteration, tags, untagged)


def detection_project(c: Client) -> tuple[str, dict, dict[str, str]]:
    """The quickstart's fork / scissors detection project, trained."""
    pid = c.json("POST", "/projects", params={"name": "od", "domainId": GENERAL_DETECTION})["id"]
    tags = {n: c.json("POST", f"/projects/{pid}/tags", params={"name": n})["id"] for n in ("fork", "scissors")}
    regions = json.loads((SAMPLES / "od_regions.json").read_text())
    entries = []
    for name, boxes in sorted(regions.items()):
        folder = "fork" if name.startswith("fork") else "scissors"
        data = (SAMPLES / "ObjectDetection" / "Images" / folder / name).read_bytes()
        entries.append({"name": name, "contents": base64.b64encode(data).decode(),
                        "regions": [{"tagId": tags[b["tag"]], "left": b["left"], "top": b["top"],
                                     "width": b["width"], "height": b["height"]} for b in boxes]})
    for start in range(0, len(entries), 64):
        body = c.json("POST", f"/projects/{pid}/images/files", json={"images": entries[start:start + 64]})
        assert body["isBatchSuccessful"]
    iteration = c.wait(pid, c.json("POST", f"/projects/{pid}/train"))
    return pid, iteration, tags


# Module-wide fixtures for the operation tests (import them: each module gets its own trained project).
@pytest.fixture(scope="module")
def c(emulator_thread) -> Client:
    return Client(emulator_thread)


@pytest.fixture(scope="module")
def trees(c: Client) -> Trees:
    return trained_trees(c)
