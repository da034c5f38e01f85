"""The service's domains, with the ids and names Azure answers with (GetDomains)."""

from __future__ import annotations

__all__ = ["DOMAINS", "DEFAULT_DOMAIN_ID", "domain_by_id"]

_CLASSIFICATION = [
    ("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "General", False),
    ("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]", False),
    ("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]", False),
    ("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", False),
    ("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", False),
    ("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", False),
    ("45badf75-3591-4f26-a705-45678d3e9f5f", "Adult", False),
    ("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)", True),
    ("a1db07ca-a19a-4830-bae8-e004a42dc863", "General (compact) [S1]", True),
    ("8882951b-82cd-4c32-970b-d5f8cb8bf6d7", "Food (compact)", True),
    ("b5cfd229-2ac7-4b2b-8d0a-2b0661344894", "Landmarks (compact)", True),
    ("6b4faeda-8396-481b-9f8b-177b9fa3097f", "Retail (compact)", True),
]
_DETECTION = [
    ("da2e3a8a-40a5-4171-82f4-58522f70fbc1", "General", False),
    ("9c616dff-2e7d-ea11-af59-1866da359ce6", "General [A1]", False),
    ("1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4", "Logo", False),
    ("3780a898-81c3-4516-81ae-3a139614e1f3", "Products on Shelves", False),
    ("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact)", True),
    ("7ec2ac80-887b-48a6-8df9-8b1357765430", "General (compact) [S1]", True),
]

# What the service answers for its compact (exportable) domains (recorded, DomainsApiTests).
_CLASSIFICATION_EXPORT = ["VAIDK", "CoreML", "DockerFile", "ONNX", "OpenVino", "TensorFlow"]
_DETECTION_EXPORT = {
    "General (compact)": (["CoreML", "DockerFile", "ONNX", "TensorFlow"], 42,
                          "A YOLO-like model for general detection problem."),
    "General (compact) [S1]": (["VAIDK", "CoreML", "DockerFile", "ONNX", "OpenVino", "TensorFlow", "IVS"], 13,
                               "A SSD-like model for general detection problem."),
}


def _domain(ident: str, name: str, kind: str, exportable: bool) -> dict:
    platforms: list[str] = []
    info: dict | None = None
    if exportable and kind == "Classification":
        subject = name.split(" (")[0].lower()
        platforms = list(_CLASSIFICATION_EXPORT)
        info = {"estimatedModelSizeInMegabytes": 5,
                "description": f"A ShuffleNet-like model for {subject} classification problem."}
    elif exportable:
        found, size, text = _DETECTION_EXPORT[name]
        platforms, info = list(found), {"estimatedModelSizeInMegabytes": size, "description": text}
    return {"id": ident, "name": name, "type": kind, "exportable": exportable, "enabled": True,
            "exportablePlatforms": platforms, "modelInformation": info}


DOMAINS: list[dict] = [_domain(i, n, "Classification", e) for i, n, e in _CLASSIFICATION] + [
    _domain(i, n, "ObjectDetection", e) for i, n, e in _DETECTION
]
DEFAULT_DOMAIN_ID = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"
_BY_ID = {d["id"]: d for d in DOMAINS}


def domain_by_id(domain_id: str) -> dict | None:
    return _BY_ID.get(domain_id.lower())
