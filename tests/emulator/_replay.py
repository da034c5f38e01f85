"""Replaying recorded real-service sessions against an emulator (LocalStack-style parity).

A recording (``../shared/specs/customvision/recordings/*.json``, see its README) is one SDK test
run against Azure. Many start from a project that already existed on the recording account; the
replay first builds that world in the emulator from what the recording shows of it (project kind,
tags, images, trained and published iterations, stored predictions), then sends every request in
chronological order with the recorded ids swapped for the emulator's, and compares each answer:
status exactly, JSON shape (keys at every level, null vs absent, value types) and enum-like values.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import io
import json
import random
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["Exchange", "Recording", "Replayer", "load_recordings", "operation_of", "shape_diff"]

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?$")
ENUM_KEYS = {"status", "type", "classificationType", "tagType", "trainingType"}
TRANSITIONAL = {"Training", "Importing", "Exporting", "Queued"}


# -- recordings ---------------------------------------------------------------------------------------
@dataclass
class Recording:
    name: str
    entries: list[dict]
    order: list[int]

    @property
    def legacy(self) -> bool:
        return any("/v1.2/" in e["uri"] for e in self.entries)


def load_recordings(folder: Path) -> list[Recording]:
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        entries = data["entries"]
        out.append(Recording(path.stem, entries, data.get("chronological_order") or list(range(len(entries)))))
    return out


_OPERATIONS = [  # (method, path suffix regex, operationId): enough to name every recorded exchange
    ("GET", r"/performance/images/count$", "GetImagePerformanceCount"),
    ("GET", r"/performance/images$", "GetImagePerformances"),
    ("GET", r"/images/regionproposals$", "GetImageRegionProposals"),
    ("GET", r"/domains$", "GetDomains"), ("GET", r"/domains/[^/]+$", "GetDomain"),
    ("POST", r"/projects$", "CreateProject"), ("GET", r"/projects$", "GetProjects"),
    ("POST", r"/projects/import$", "ImportProject"),
    ("GET", r"/projects/[^/]+$", "GetProject"), ("PATCH", r"/projects/[^/]+$", "UpdateProject"),
    ("DELETE", r"/projects/[^/]+$", "DeleteProject"), ("GET", r"/projects/[^/]+/export$", "ExportProject"),
    ("POST", r"/tags$", "CreateTag"), ("GET", r"/tags$", "GetTags"), ("GET", r"/tags/[^/]+$", "GetTag"),
    ("PATCH", r"/tags/[^/]+$", "UpdateTag"), ("DELETE", r"/tags/[^/]+$", "DeleteTag"),
    ("GET", r"/images/count$", "GetImageCount"), ("GET", r"/images/tagged/count$", "GetTaggedImageCount"),
    ("GET", r"/images/untagged/count$", "GetUntaggedImageCount"), ("GET", r"/images/tagged$", "GetTaggedImages"),
    ("GET", r"/images/untagged$", "GetUntaggedImages"), ("GET", r"/images/id$", "GetImagesByIds"),
    ("GET", r"/images$", "GetImages"), ("POST", r"/images$", "CreateImagesFromData"),
    ("DELETE", r"/images$", "DeleteImages"), ("POST", r"/images/files$", "CreateImagesFromFiles"),
    ("POST", r"/images/urls$", "CreateImagesFromUrls"), ("POST", r"/images/predictions$", "CreateImagesFromPredictions"),
    ("POST", r"/images/tags$", "CreateImageTags"), ("DELETE", r"/images/tags$", "DeleteImageTags"),
    ("POST", r"/images/metadata$", "UpdateImageMetadata"),
    ("POST", r"/images/suggested$", "QuerySuggestedImages"), ("POST", r"/images/suggested/count$", "QuerySuggestedImageCount"),
    ("POST", r"/tagsandregions/suggestions$", "SuggestTagsAndRegions"), ("GET", r"/artifacts$", "GetArtifact"),
    ("POST", r"/train$", "TrainProject"), ("GET", r"/iterations$", "GetIterations"),
    ("GET", r"/iterations/[^/]+$", "GetIteration"), ("PATCH", r"/iterations/[^/]+$", "UpdateIteration"),
    ("POST", r"/iterations/[^/]+/export$", "ExportIteration"), ("GET", r"/iterations/[^/]+/export$", "GetExports"),
    ("POST", r"/iterations/[^/]+/publish$", "PublishIteration"),

    ("POST", r"/predictions/query$", "QueryPredictions"), ("DELETE", r"/predictions$", "DeletePrediction"),
    ("POST", r"/quicktest/image$", "QuickTestImage"), ("POST", r"/quicktest/url$", "QuickTestImageUrl"),
    ("POST", r"/classify/iterations/[^/]+/image(/nostore)?$", "ClassifyImage"),
    ("POST", r"/classify/iterations/[^/]+/url(/nostore)?$", "ClassifyImageUrl"),
    ("POST", r"/detect/iterations/[^/]+/image(/nostore)?$", "DetectImage"),
    ("POST", r"/detect/iterations/[^/]+/url(/nostore)?$", "DetectImageUrl"),
]


def operation_of(method: str, uri: str) -> str:
    path = uri.partition("?")[0]
    for m, pattern, op in _OPERATIONS:
        if m == method and re.search(pattern, path, re.IGNORECASE):
            return op
    return f"{method} {path}"


# -- shapes -------------------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "datetime" if DATE_RE.match(value) else "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _item_shape(value: Any, key: str = "") -> Any:
    kind = _kind(value)
    if kind == "object":
        return tuple(sorted((k, _item_shape(v, k)) for k, v in value.items()))
    if kind == "array":
        return ("array", tuple(sorted({repr(_item_shape(v)) for v in value})))
    if key in ENUM_KEYS and isinstance(value, str):
        return f"{kind}={value}"
    return kind


def shape_diff(recorded: Any, got: Any, path: str = "$", key: str = "") -> list[str]:
    """Differences of shape (keys, null vs absent, types) and enum values; [] when they match.
    Arrays: every item shape seen in one must be seen in the other (a recorded empty array says
    nothing about its items, and recordings truncate long arrays)."""
    rk, gk = _kind(recorded), _kind(got)
    if rk != gk:
        return [f"{path}: {rk} recorded, {gk} answered"]
    if rk == "object":
        out = []
        for k in sorted(set(recorded) | set(got)):
            if k not in got:
                out.append(f"{path}.{k}: absent in the answer")
            elif k not in recorded:
                out.append(f"{path}.{k}: not in the recording")
            else:
                out += shape_diff(recorded[k], got[k], f"{path}.{k}", k)
        return out
    if rk == "array":
        if not recorded:
            return []
        if not got:
            return [f"{path}: {len(recorded)} items recorded, empty answer"]
        out = []
        got_shapes = {repr(_item_shape(v)): v for v in got}
        rec_shapes = {repr(_item_shape(v)): v for v in recorded}
        for s, v in rec_shapes.items():
            if s not in got_shapes:
                nearest = min(got_shapes.values(), key=lambda g: len(shape_diff(v, g, path + "[]")))
                out += shape_diff(v, nearest, path + "[]")
        for s, v in got_shapes.items():
            if s not in rec_shapes:
                nearest = min(rec_shapes.values(), key=lambda r: len(shape_diff(r, v, path + "[]")))
                out += shape_diff(nearest, v, path + "[]")
        return sorted(set(out))
    if key in ENUM_KEYS and isinstance(recorded, str) and recorded != got:
        return [f"{path}: {recorded!r} recorded, {got!r} answered"]
    return []


# -- images and a local URL source ---------------------------------------------------------------------------
def synth_image(seed: int, fmt: str = "JPEG", size: tuple[int, int] = (96, 72)) -> bytes:
    """A small valid image, different per seed (so no two are duplicates of each other)."""
    rnd = random.Random(seed)
    img = Image.new("RGB", size, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    for _ in range(6):
        x, y = rnd.randrange(size[0] - 8), rnd.randrange(size[1] - 8)
        img.paste((rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)), (x, y, x + 8, y + 8))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


class ImageSource:
    """A local HTTP server answering any path with a JPEG: recordings fetch images from GitHub,
    tests talk only to 127.0.0.1."""

    def __init__(self) -> None:
        data = synth_image(4242)

        class _Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib's name
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/test_image.jpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- one exchange's outcome ---------------------------------------------------------------------------------
@dataclass
class Exchange:
    recording: str
    index: int
    operation: str
    recorded_status: int
    status: int | None = None
    diffs: list[str] = field(default_factory=list)
    scored: bool = True
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.recording}#{self.index}"

    @property
    def ok(self) -> bool:
        return self.status == self.recorded_status and not self.diffs


# -- the world a recording starts from ------------------------------------------------------------------------
def _walk(value: Any) -> Iterator[dict]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


@dataclass
class _Facts:
    """What a recording shows of the things it did not create."""

    kind: str = ""
    tags: dict[str, dict] = field(default_factory=dict)  # recorded id -> {"name", "type"}
    images: dict[str, dict] = field(default_factory=dict)  # recorded id -> {"tags", "regions", "metadata"}
    iterations: dict[str, dict] = field(default_factory=dict)  # recorded id -> {"name", "publishName", "status"}
    predictions: list[str] = field(default_factory=list)
    publish_names: set[str] = field(default_factory=set)
    domain_id: str = ""  # the domain its iterations were trained on (an export needs a compact one)


_CREATING = ("Create", "Train", "Import", "QuickTest", "Classify", "Detect")


def created_ids(rec: Recording) -> set[str]:
    """Ids the recording's own calls created: in the answer of a POST before any request names them."""
    seen_in_request: set[str] = set()
    out: set[str] = set()
    for index in rec.order:
        e = rec.entries[index]
        request = e["uri"] + json.dumps(e["request_body"])
        seen_in_request |= {m.lower() for m in UUID_RE.findall(request)}
        if e["method"] != "POST" or not operation_of(e["method"], e["uri"]).startswith(_CREATING):
            continue
        for d in _walk(e["response_body"]):
            ident = str(d.get("id", "")).lower()
            if UUID_RE.fullmatch(ident) and ident not in seen_in_request:
                out.add(ident)
    return out


def _facts(rec: Recording, project: str) -> _Facts:
    f = _facts_all(rec, project)
    own = created_ids(rec)
    f.iterations = {k: v for k, v in f.iterations.items() if k not in own}
    f.images = {k: v for k, v in f.images.items() if k not in own}
    f.tags = {k: v for k, v in f.tags.items() if k not in own}
    f.predictions = [p for p in f.predictions if p not in own]
    return f


def _facts_all(rec: Recording, project: str) -> _Facts:
    f = _Facts()
    for e in rec.entries:
        uri = urllib.parse.unquote(e["uri"])
        if "/detect/" in uri:
            f.kind = "ObjectDetection"
        m = re.search(r"/(?:classify|detect)/iterations/([^/]+)/", uri)
        if m:
            f.publish_names.add(m.group(1))
        query = urllib.parse.parse_qs(e["uri"].partition("?")[2])
        for iid in query.get("iterationId", []):
            f.iterations.setdefault(iid.lower(), {})
        m = re.search(r"/iterations/(" + UUID_RE.pattern + ")", uri)
        if m:
            f.iterations.setdefault(m.group(1).lower(), {})
        for tid in ",".join(query.get("tagIds", [])).split(","):
            if UUID_RE.fullmatch(tid):
                f.tags.setdefault(tid.lower(), {})
        for iid in ",".join(query.get("imageIds", [])).split(","):
            if UUID_RE.fullmatch(iid):
                f.images.setdefault(iid.lower(), {})
        for d in _walk(e["request_body"]):
            if UUID_RE.fullmatch(str(d.get("iterationId", ""))):
                f.iterations.setdefault(d["iterationId"].lower(), {})
        body = e["response_body"]
        for d in _walk(body):
            if "classificationType" in d and d.get("classificationType") and not f.kind:
                f.kind = d["classificationType"]
            if "boundingBox" in d or d.get("regions"):
                f.kind = "ObjectDetection"
            if "tagId" in d and "tagName" in d and d["tagName"]:
                f.tags.setdefault(d["tagId"].lower(), {}).setdefault("name", d["tagName"])
            if {"id", "name", "type", "imageCount"} <= set(d):
                f.tags.setdefault(d["id"].lower(), {}).update(name=d["name"], type=d["type"])
            if "id" in d and "originalImageUri" in d and "project" not in d:
                f.images[d["id"].lower()] = {
                    "tags": [t["tagId"].lower() for t in d.get("tags") or []],
                    "regions": d.get("regions") or [], "metadata": d.get("metadata"),
                }
            if "id" in d and "trainingType" in d and d.get("projectId", project).lower() == project:
                it = f.iterations.setdefault(d["id"].lower(), {})
                it.setdefault("name", d.get("name"))
                if d.get("publishName"):
                    it["publishName"] = d["publishName"]
                it.setdefault("status", d.get("status"))
                if d.get("domainId") and not f.domain_id:
                    f.domain_id = d["domainId"].lower()
                if d.get("classificationType") and not f.kind:
                    f.kind = d["classificationType"]
            if "id" in d and "iteration" in d and "predictions" in d and "originalImageUri" in d:
                f.predictions.append(d["id"].lower())
    return f


class Replayer:
    """Replays recordings against one running emulator (``endpoint``, keys)."""

    def __init__(self, endpoint: str, training_key: str, prediction_key: str, resource_id: str,
                 poll_limit: float = 20.0) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.keys = {"Training-Key": training_key, "Prediction-Key": prediction_key}
        self.resource_id = resource_id
        self.poll_limit = poll_limit
        self.images = ImageSource()
        self._seed = 1000

    def close(self) -> None:
        self.images.close()

    # -- HTTP ------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, auth: str = "Training-Key", body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            headers = {auth: self.keys[auth]}
            if content_type:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k: v for k, v in resp.getheaders()}
            if raw and (resp.getheader("Content-Type") or "").startswith("application/json"):
                return resp.status, hdrs, json.loads(raw)
            return resp.status, hdrs, raw.decode("latin-1") if raw else ""
        finally:
            conn.close()

    def _api(self, method: str, path: str, body: Any = None, expect: int = 200, **query: str) -> Any:
        qs = ("?" + urllib.parse.urlencode(query)) if query else ""
        data = json.dumps(body).encode() if body is not None else None
        status, _, answer = self.request(method, f"/customvision/v3.3/training{path}{qs}", body=data,
                                         content_type="application/json" if data else None)
        if status != expect:
            raise AssertionError(f"world set-up: {method} {path} answered {status}: {answer}")
        return answer

    def _image(self) -> bytes:
        self._seed += 1
        return synth_image(self._seed)

    def _upload(self, pid: str, tag_ids: list[str], regions: list[dict] | None = None,
                metadata: dict | None = None) -> str:
        entry: dict[str, Any] = {"name": "x.jpg", "contents": base64.b64encode(self._image()).decode()}
        if regions:
            entry["regions"] = regions
        else:
            entry["tagIds"] = tag_ids
        body: dict[str, Any] = {"images": [entry]}
        if metadata:
            body["metadata"] = metadata
        answer = self._api("POST", f"/projects/{pid}/images/files", body)
        return answer["images"][0]["image"]["id"]

    def _wait(self, pid: str, iid: str) -> None:
        deadline = time.monotonic() + self.poll_limit
        while time.monotonic() < deadline:
            if self._api("GET", f"/projects/{pid}/iterations/{iid}")["status"] != "Training":
                return
            time.sleep(0.05)
        raise AssertionError("world set-up: training did not finish")

    def build_world(self, rec: Recording, recorded_pid: str, ids: dict[str, str]) -> None:
        """Create in the emulator the project ``recorded_pid`` as the recording shows it."""
        f = _facts(rec, recorded_pid)
        detection = f.kind == "ObjectDetection"
        params = {"name": f"replay {rec.name}"}
        if detection:
            params["domainId"] = f.domain_id or "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
        else:
            params["classificationType"] = f.kind if f.kind in ("Multiclass", "Multilabel") else "Multilabel"
            if f.domain_id:
                params["domainId"] = f.domain_id
        project = self._api("POST", "/projects", **params)
        pid = project["id"]
        ids[recorded_pid] = pid
        trains = bool(f.iterations or f.publish_names or f.predictions)
        recorded_tags = list(f.tags.items())
        n = 0
        while trains and len(recorded_tags) < 2:
            recorded_tags.append((str(uuid.uuid4()), {"name": f"Extra {n}"}))
            n += 1
        by_name: dict[str, str] = {}
        for rid, tag in recorded_tags:
            name = tag.get("name") or f"Tag {len(ids)}"
            if name not in by_name:  # an import's copy shows the same tag names again
                by_name[name] = self._api("POST", f"/projects/{pid}/tags", name=name,
                                          type=tag.get("type") or "Regular")["id"]
            ids[rid] = by_name[name]
        recorded_tags = [(rid, tag) for rid, tag in recorded_tags if ids[rid] in set(by_name.values())]
        mapped = lambda t: [ids[x] for x in t if x in ids]  # noqa: E731
        per_tag: dict[str, int] = {}
        for rid, image in f.images.items():
            tags = mapped(image.get("tags") or [])
            regions = [{"tagId": ids[r["tagId"].lower()], "left": r["left"], "top": r["top"],
                        "width": r["width"], "height": r["height"]}
                       for r in image.get("regions") or [] if r["tagId"].lower() in ids]
            ids[rid] = self._upload(pid, tags, regions, image.get("metadata"))
            for t in tags + [r["tagId"] for r in regions]:
                per_tag[t] = per_tag.get(t, 0) + 1
        if trains:
            need = 16 if detection else 5
            for rid, _ in recorded_tags:
                tid = ids[rid]
                for _ in range(need - per_tag.get(tid, 0)):
                    box = [{"tagId": tid, "left": 0.1, "top": 0.1, "width": 0.5, "height": 0.5}]
                    self._upload(pid, [] if detection else [tid], box if detection else None)
            iterations = list(f.iterations.items()) or [(str(uuid.uuid4()), {})]
            publish = sorted(f.publish_names)
            for i, (rid, it) in enumerate(iterations):
                trained = self._api("POST", f"/projects/{pid}/train", forceTrain="true")
                ids[rid] = trained["id"]
                self._wait(pid, trained["id"])
                name = it.get("publishName") or (publish.pop(0) if publish and i == len(iterations) - 1 else None)
                if name:
                    self._api("POST", f"/projects/{pid}/iterations/{trained['id']}/publish",
                              publishName=name, predictionId=self.resource_id)
            last = ids[iterations[-1][0]]
            for rid in dict.fromkeys(f.predictions):
                status, _, answer = self.request(
                    "POST", f"/customvision/v3.3/training/projects/{pid}/quicktest/image?iterationId={last}&store=true",
                    body=self._image(), content_type="application/octet-stream")
                if status != 200:
                    raise AssertionError(f"world set-up: quick test answered {status}: {answer}")
                ids[rid] = answer["id"]

    # -- replay ----------------------------------------------------------------------------------------
    def _swap(self, text: str, ids: dict[str, str]) -> str:
        return UUID_RE.sub(lambda m: ids.get(m.group(0).lower(), m.group(0)), text)

    def _uri(self, uri: str, ids: dict[str, str], tokens: dict[str, str]) -> str:
        raw_path, _, raw_query = uri.partition("?")  # not urlsplit: "//customvision" is no host
        path = self._swap(raw_path, ids)
        query = []
        for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
            v = tokens.get(v, v)
            query.append((k, self._swap(v, ids)))
        qs = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return path + ("?" + qs if qs else "")

    def _body(self, e: dict, ids: dict[str, str]) -> tuple[bytes | None, str | None]:
        body = e["request_body"]
        ctype = (e.get("request_headers") or {}).get("Content-Type")
        if body in ("", None):
            return None, None
        if isinstance(body, dict) and "omitted_bytes" in body:
            if "json_template" in body:
                text = json.dumps(body["json_template"])
                while '"<base64 JPEG>"' in text:
                    text = text.replace('"<base64 JPEG>"', json.dumps(base64.b64encode(self._image()).decode()), 1)
                return self._swap(text, ids).encode(), "application/json; charset=utf-8"
            boundary = uuid.uuid4().hex
            out = b""
            for part in body.get("parts") or [{"name": "imageData", "filename": "image.jpg", "image": "jpeg"}]:
                fmt = "PNG" if part.get("image") == "png" else "JPEG"
                out += (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                        f"Content-Disposition: form-data; name={part['name']}; filename={part['filename']}\r\n\r\n"
                        ).encode() + synth_image(self._seed + 77, fmt) + b"\r\n"
                self._seed += 1
            return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary=\"{boundary}\""
        if isinstance(body, (dict, list)):
            text = json.dumps(body)
            text = re.sub(r'"https://raw\.githubusercontent\.com[^"]*"', json.dumps(self.images.url), text)
            return self._swap(text, ids).encode(), ctype or "application/json"
        return str(body).encode(), ctype

    @staticmethod
    def _learn(recorded: Any, got: Any, ids: dict[str, str], tokens: dict[str, str], key: str = "") -> None:
        """Map the recorded ids (and tokens) of an answer onto the emulator's, walking both."""
        if isinstance(recorded, str) and isinstance(got, str):
            if UUID_RE.fullmatch(recorded) and UUID_RE.fullmatch(got):
                ids.setdefault(recorded.lower(), got)
            elif key == "token" or key.endswith("Uri"):
                tokens.setdefault(recorded, got)
        elif isinstance(recorded, dict) and isinstance(got, dict):
            for k in recorded:
                if k in got:
                    Replayer._learn(recorded[k], got[k], ids, tokens, k)
        elif isinstance(recorded, list) and isinstance(got, list):
            named = all(isinstance(x, dict) and "name" in x for x in recorded + got)
            if named:
                by_name = {x["name"]: x for x in got}
                for x in recorded:
                    if x["name"] in by_name:
                        Replayer._learn(x, by_name[x["name"]], ids, tokens)
            else:
                for r, g in zip(recorded, got):
                    Replayer._learn(r, g, ids, tokens)

    def replay(self, rec: Recording) -> list[Exchange]:
        # Domain ids are the service's own: the same in the emulator.
        ids: dict[str, str] = {d["id"]: d["id"] for d in self._api("GET", "/domains")}
        tokens: dict[str, str] = {}
        created: set[str] = set()
        after_cut = False
        out = []
        for index in rec.order:
            e = rec.entries[index]
            ex = Exchange(rec.name, index, operation_of(e["method"], e["uri"]), e["status"])
            out.append(ex)
            if "/v1.2/" in e["uri"]:
                ex.scored, ex.note = False, "legacy v1.2"
            if e.get("depends_on_omitted"):
                ex.scored, ex.note = False, "depends on omitted entries"
            uri = e["uri"]
            # A project the recording did not create existed on the recording account: build it.
            for m in re.finditer(r"/[Pp]rojects/(" + UUID_RE.pattern + ")", uri):
                rpid = m.group(1).lower()
                if rpid not in ids and rpid not in created and ex.scored:
                    self.build_world(rec, rpid, ids)
            m = re.search(r"/prediction/(" + UUID_RE.pattern + ")/", uri)
            if m and m.group(1).lower() not in ids:
                self.build_world(rec, m.group(1).lower(), ids)
            path = self._uri(uri, ids, tokens)
            body, ctype = self._body(e, ids)
            status, headers, answer = self.request(e["method"], path, e["auth_header"], body, ctype)
            deadline = time.monotonic() + self.poll_limit
            while self._keep_polling(e, answer, after_cut) and time.monotonic() < deadline:
                time.sleep(0.05)  # the recording's client polled (those polls were cut): poll too
                status, headers, answer = self.request(e["method"], path, e["auth_header"], body, ctype)
            after_cut = bool(e.get("omitted_after"))
            ex.status = status
            if status == e["status"] and e["response_body"] != "":
                ex.diffs = self._compare(self._swap_keys(e["response_body"], ids), answer, headers)
            ex.diffs += self._header_diffs(e, headers)
            if status == e["status"]:
                self._learn(e["response_body"], answer, ids, tokens)
                for d in _walk(e["response_body"]):
                    if "id" in d and "settings" in d:
                        created.add(str(d["id"]).lower())
        return out

    @staticmethod
    def _swap_keys(recorded: Any, ids: dict[str, str]) -> Any:
        """The recorded answer with recorded ids used as object keys (QuerySuggestedImageCount's
        ``{tagId: count}``) replaced by the emulator's, as ids in requests are."""
        if isinstance(recorded, dict):
            return {(ids.get(k.lower(), k) if UUID_RE.fullmatch(k) else k): Replayer._swap_keys(v, ids)
                    for k, v in recorded.items()}
        if isinstance(recorded, list):
            return [Replayer._swap_keys(v, ids) for v in recorded]
        return recorded

    @staticmethod
    def _compare(recorded: Any, answer: Any, headers: dict[str, str]) -> list[str]:
        """Shape differences; a binary body the transcription omitted (``{"omitted_bytes",
        "content_type"}``, GetArtifact) is compared by its Content-Type and that it is not empty."""
        if isinstance(recorded, dict) and "omitted_bytes" in recorded and "json_template" not in recorded:
            got = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
            out = [] if answer else ["$: a body recorded, an empty answer"]
            if got.split(";")[0].strip() != recorded["content_type"].split(";")[0].strip():
                out.append(f"Content-Type {recorded['content_type']!r} recorded, {got!r} answered")
            return out
        return shape_diff(recorded, answer)

    @staticmethod
    def _keep_polling(e: dict, answer: Any, after_cut: bool) -> bool:
        """A GET of a resource still moving (Training, Importing, Exporting...) where the recording
        shows it further on: after polls the transcription cut, or in its final state. A list
        (GetExports) is still moving while one of its items is."""
        recorded = e["response_body"]
        if e["method"] != "GET":
            return False
        if isinstance(answer, list) and isinstance(recorded, list) and answer and recorded:
            moving = [i for i, a in enumerate(answer) if isinstance(a, dict) and a.get("status") in TRANSITIONAL]
            return any(i < len(recorded) and isinstance(recorded[i], dict)
                       and recorded[i].get("status") not in TRANSITIONAL for i in moving)
        if not isinstance(answer, dict) or not isinstance(recorded, dict):
            return False
        if answer.get("status") not in TRANSITIONAL:
            return False
        return recorded.get("status") not in TRANSITIONAL or (after_cut and bool(shape_diff(recorded, answer)))

    @staticmethod
    def _header_diffs(e: dict, headers: dict[str, str]) -> list[str]:
        out = []
        lower = {k.lower(): v for k, v in headers.items()}
        for name in ("apim-request-id", "Request-Id", "Strict-Transport-Security", "X-Content-Type-Options"):
            if name in e["response_headers"] and name.lower() not in lower:
                out.append(f"header {name} missing")
        if "Content-Type" not in e["response_headers"] and "content-type" in lower:
            out.append("header Content-Type present, none recorded")
        return out
