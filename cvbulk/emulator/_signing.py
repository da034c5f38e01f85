"""Signed, expiring URLs for stored images and exports, like the service's SAS links.

A URL carries ``se`` (expiry, UTC, as Azure writes it) and ``sig`` (HMAC-SHA256 with a secret of
this emulator's data folder over the resource path and the expiry), so it works for the one
resource it was issued for, until it expires, and not across projects. Refusals are answered as
Azure Blob storage answers them: 403 with an XML ``AuthenticationFailed`` body.

The signer keeps its own clock (real time plus what ``advance`` skipped), the one links are issued and
checked against: a test moves it past every link's expiry mid-run instead of sleeping until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

__all__ = ["UrlSigner", "load_secret", "storage_error", "storage_refusal"]

_FMT = "%Y-%m-%dT%H:%M:%SZ"


def load_secret(data_dir: Path) -> bytes:
    """The data folder's signing secret (created once, owner-only): URLs survive a restart."""
    path = data_dir / "signing.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret.hex())
        return secret


class UrlSigner:
    def __init__(self, secret: bytes, ttl_seconds: float) -> None:
        self._secret = secret
        self.ttl = ttl_seconds
        self._expiry: tuple[int, str, str] = (-1, "", "")  # (second, expiry, quoted): listings sign hundreds
        self.skipped = 0.0  # seconds the link clock is ahead of real time

    def now(self) -> float:
        """The link clock: the time links are issued and checked at (epoch seconds)."""
        return time.time() + self.skipped

    def advance(self, seconds: float) -> None:
        """Move the link clock forward: links issued before expire ``seconds`` sooner."""
        if seconds < 0:
            raise ValueError("the link clock only moves forward")
        self.skipped += seconds

    def _sig(self, resource: str, expiry: str) -> str:
        mac = hmac.digest(self._secret, f"{resource}\n{expiry}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def sign(self, resource: str) -> tuple[str, str, str]:
        """(expiry, its URL-quoted form, signature) for a resource, valid for ``ttl`` seconds."""
        ends = int(self.now() + self.ttl)
        if ends != self._expiry[0]:
            expiry = time.strftime(_FMT, time.gmtime(ends))
            self._expiry = (ends, expiry, quote(expiry))
        _, expiry, quoted = self._expiry
        return expiry, quoted, self._sig(resource, expiry)

    def query(self, resource: str) -> str:
        """``se=...&sp=r&sig=...`` for a resource path, valid for ``ttl`` seconds from now."""
        _, quoted, sig = self.sign(resource)
        return f"se={quoted}&sp=r&sig={sig}"

    def authentic(self, resource: str, expiry: str | None, sig: str | None) -> bool:
        """Whether the signature is the one issued for this resource and expiry (expired or not)."""
        return bool(expiry and sig) and hmac.compare_digest(
            str(sig).encode(), self._sig(resource, str(expiry)).encode())

    def refusal(self, resource: str, expiry: str | None, sig: str | None) -> str | None:
        """None when the URL is valid, else the AuthenticationErrorDetail Azure would give."""
        if not expiry or not sig:
            return "Signature fields not well formed."
        if not hmac.compare_digest(sig.encode(), self._sig(resource, expiry).encode()):
            return "Signature did not match."
        try:
            ends = datetime.strptime(expiry, _FMT).replace(tzinfo=timezone.utc)
        except ValueError:
            return "Signature fields not well formed."
        now = datetime.fromtimestamp(self.now(), timezone.utc)
        if ends < now:
            return (f"Signed expiry time [{ends:%a, %d %b %Y %H:%M:%S} GMT] must be after signed start time "
                    f"[{now:%a, %d %b %Y %H:%M:%S} GMT]")
        return None


def storage_refusal(detail: str) -> web.Response:
    """Azure Blob storage's answer to a SAS URL it does not accept."""
    return storage_error(
        403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of "
        "Authorization header is formed correctly including the signature.",
        f"<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>")


def storage_error(status: int, code: str, message: str, extra: str = "") -> web.Response:
    """An error as Azure Blob storage writes it: XML ``<Error><Code>`` with the request id and time."""
    request_id = str(uuid.uuid4())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}'
            f"\nRequestId:{request_id}\nTime:{when}</Message>{extra}</Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml",
                        headers={"x-ms-request-id": request_id, "x-ms-error-code": code})
