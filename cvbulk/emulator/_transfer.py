"""ImportProject: copy a project from an ExportProject token (this emulator's or another's)."""

from __future__ import annotations

import base64
import binascii
import json

import anyio

from ._errors import ApiError
from ._state import EmulatorState

__all__ = ["import_from_token"]


def _decode(token: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"].isalnum():
            raise ValueError
        return data
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "BadRequestInvalidImportToken", "The import token is not valid") from None


async def _fetch(st: EmulatorState, url: str) -> bytes:
    if st.http is None:
        raise ApiError(400, "BadRequestInvalidImportToken", "The exporting emulator cannot be reached")
    try:
        async with st.http.get(url) as resp:
            if resp.status != 200:
                raise ApiError(400, "BadRequestInvalidImportToken", "The export is not available")
            return await resp.read()
    except OSError:
        raise ApiError(400, "BadRequestInvalidImportToken", "The exporting emulator cannot be reached") from None


async def import_from_token(st: EmulatorState, token: str, name: str | None) -> dict:
    ref = _decode(token)
    local = st.data_dir / "exports" / f"{ref['id']}.json"
    if local.exists():
        snap = json.loads(await anyio.to_thread.run_sync(local.read_text))
    else:  # exported by another emulator: fetch the snapshot and the image bytes from it
        origin = str(ref.get("origin") or "")
        snap = json.loads(await _fetch(st, f"{origin}/emulator/exports/{ref['id']}"))
        for image in snap["images"]:
            if not st.blobs.exists(image["sha256"]):
                data = await _fetch(st, f"{origin}/emulator/blobs/{image['sha256']}")
                await anyio.to_thread.run_sync(st.blobs.put, data)
    return await anyio.to_thread.run_sync(st.store.import_snapshot, snap, name)
