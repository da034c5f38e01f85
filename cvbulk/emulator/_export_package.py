"""The file ExportIteration produces: a zip of the emulator's own model that says what it is.

The service exports a TensorFlow / ONNX / CoreML model of its network. The emulator's model is
a small linear model over its own image features, so the package holds that model (the JSON the
emulator itself loads), the labels in the model's output order as the service's exports do
(``labels.txt``), a manifest, and a README naming the platform and flavor that were asked for and
stating plainly that the files are not that platform's format. Synchronous: a worker thread.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

__all__ = ["write_export", "export_file_name"]


def export_file_name(iteration_id: str, platform: str, flavor: str) -> str:
    """Named like the service's blobs (``<iteration hex>.TensorFlow.zip``), plus the flavor."""
    parts = [iteration_id.replace("-", ""), platform] + ([flavor] if flavor else [])
    return ".".join(parts) + ".zip"


def _readme(manifest: dict) -> str:
    flavor = manifest["flavor"] or "(none)"
    return f"""cvbulk emulator model export
============================

This archive was produced by the cvbulk Custom Vision emulator (ExportIteration), not by Azure.

Requested platform: {manifest["platform"]}
Requested flavor:   {flavor}
Project:            {manifest["projectId"]}
Iteration:          {manifest["iterationId"]} ({manifest["iterationName"]})
Model kind:         {manifest["kind"]}
Exported at:        {manifest["exportedAt"]}

The files here are NOT a {manifest["platform"]} model. The emulator trains a small deterministic
linear model on its own image features, and this archive carries exactly that model:

  model.json     the trained model (format {manifest["modelFormat"]}), the file the emulator loads
  labels.txt     tag names, one a line, in the model's tag order (as the service's exports have)
  manifest.json  what was exported, when, and the tags (id, name, type)

Use it to test a download/unpack pipeline against the emulator; use Azure Custom Vision for a
model that runs on {manifest["platform"]}.
"""


def write_export(model_path: Path, target: Path, manifest: dict) -> None:
    """Write the zip atomically (temp file + rename): a reader never sees half an archive."""
    model = model_path.read_bytes()
    names = {t["id"]: t["name"] for t in manifest["tags"]}
    order = json.loads(model).get("tag_ids", [])
    labels = "".join(f"{names.get(t, t)}\n" for t in order)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", _readme(manifest))
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        zf.writestr("labels.txt", labels)
        zf.writestr("model.json", model)
    os.replace(tmp, target)
