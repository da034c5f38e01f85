"""The client as users see it: every public name is exported, documented and typed; py.typed ships."""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path

import cvbulk.client as client

def _public_members(cls: type) -> dict[str, object]:
    out = {}
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") or (issubclass(cls, BaseException) and hasattr(BaseException, name)):
            continue
        target = value.fget if isinstance(value, property) else value
        if callable(target):
            out[f"{cls.__name__}.{name}"] = target
    return out


def test_every_exported_name_exists_and_is_documented():
    undocumented = []
    for name in client.__all__:
        value = getattr(client, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            undocumented.append(name)
        if inspect.isclass(value) and value.__module__.startswith("cvbulk.client"):
            for member, target in _public_members(value).items():
                if not (getattr(target, "__doc__", None) or "").strip():
                    undocumented.append(member)
    assert undocumented == []


def test_public_client_methods_are_annotated():
    for cls in (client.TrainingClient, client.PredictionClient):
        for name, method in inspect.getmembers(cls, inspect.iscoroutinefunction):
            if name.startswith("_"):
                continue
            signature = inspect.signature(method)
            assert signature.return_annotation is not inspect.Signature.empty, name
            for param in list(signature.parameters.values())[1:]:
                assert param.annotation is not inspect.Parameter.empty, (name, param.name)


def test_the_helpers_and_tables_are_exported_once():
    for name in ("parse_timestamp", "is_uuid", "TIERS", "Tier", "RetryEvent", "RetryCause",
                 "EndpointUnreachableError", "TrainingFailedError", "TrainingTimeoutError", "IterationStatus",
                 "ImageCreateStatus", "ProjectStatus", "ClassificationType", "TagType", "DomainType"):
        assert name in client.__all__, name
    assert len(client.__all__) == len(set(client.__all__))


def test_py_typed_marker_is_in_the_package_and_its_data():
    assert resources.files("cvbulk").joinpath("py.typed").is_file()
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    section = pyproject.read_text().split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"py.typed"' in section
