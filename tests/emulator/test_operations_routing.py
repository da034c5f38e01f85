"""Every operation of both specs is routed to its own handler (not 404, not 405), under the
spec's versions and the ones the official SDKs call (training v3.4-preview, prediction v3.1)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import requests
from aiohttp.test_utils import make_mocked_request

from cvbulk.emulator import EmulatorConfig
from cvbulk.emulator._app import build_app
from cvbulk.emulator._state import EmulatorState

pytestmark = pytest.mark.timeout(30)

SPEC = json.loads((Path(__file__).resolve().parent / "spec_operations.json").read_text())
OPERATIONS = SPEC["operations"]
BASES = {"Training": ("v3.3", "v3.4-preview"), "Prediction": ("v3.0", "v3.1")}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "MyModel" if m.group(0) == "{publishedName}" else str(uuid.uuid4()), path)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    state = EmulatorState.open(EmulatorConfig(), tmp_path_factory.mktemp("routing"))
    yield build_app(state)
    state.store.close()


def test_the_spec_table_has_all_60_operations():
    assert len(OPERATIONS) == 60
    assert len({o["operationId"] for o in OPERATIONS}) == 60
    assert {o["api"] for o in OPERATIONS} == {"Training", "Prediction"}


@pytest.mark.parametrize("op", OPERATIONS, ids=[o["operationId"] for o in OPERATIONS])
async def test_operation_is_routed_to_its_handler(app, op):
    for version in BASES[op["api"]]:
        url = f"/customvision/{version}/{op['api'].lower()}{_concrete(op['path'])}"
        match = await app.router.resolve(make_mocked_request(op["method"], url, app=app))
        assert match.http_exception is None, (op, url, match.http_exception)
        info = match.route.resource.cv_info  # type: ignore[union-attr]
        assert info[op["method"]][:2] == (op["api"], op["operationId"]), (url, info)


def test_each_operation_answers_over_http(emulator_thread):
    """With a real project id and random other ids, every operation answers with its own
    handler: the router's 404 ("Resource not found") and 405 never come back."""
    t = f"{emulator_thread.endpoint}/customvision/v3.3/training"
    p = f"{emulator_thread.endpoint}/customvision/v3.0/prediction"
    keys = {"Training": {"Training-Key": emulator_thread.training_key},
            "Prediction": {"Prediction-Key": emulator_thread.prediction_key}}
    pid = requests.post(f"{t}/projects", params={"name": "routing"}, headers=keys["Training"], timeout=30).json()["id"]
    with requests.Session() as s:
        for op in OPERATIONS:
            if op["operationId"] == "DeleteProject":
                continue  # run last, it removes the project the others use
            path = re.sub(r"^/projects/[0-9a-f-]{36}", f"/projects/{pid}", _concrete(op["path"]))
            if op["api"] == "Prediction":
                path = re.sub(r"^/[0-9a-f-]{36}", f"/{pid}", path)
            base = t if op["api"] == "Training" else p
            resp = s.request(op["method"], base + path, headers=keys[op["api"]], timeout=30)
            assert resp.status_code != 405, (op, resp.text)
            assert "Resource not found" not in resp.text, (op, resp.status_code)
            if resp.status_code >= 400:
                assert set(resp.json()) == {"code", "message"}, (op, resp.text)
        assert s.delete(f"{t}/projects/{pid}", headers=keys["Training"], timeout=30).status_code == 204
