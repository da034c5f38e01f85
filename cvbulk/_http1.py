"""HTTP/1.1 wire details shared by the two lean clients (``client._lean`` for the service's JSON calls,
``storage._ranged`` for ranged blob reads). It imports nothing of cvbulk: both layers stand on it."""

from __future__ import annotations

__all__ = ["chunked_body"]


def chunked_body(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """The body of a chunked answer whose first chunk starts at ``pos`` of ``buf``, and where the answer ends
    (past its trailer); None while it is not all in ``buf``. Raises ValueError on a malformed chunk size."""
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        start = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buf) < start + size + 2:
            return None
        body += buf[start : start + size]
        pos = start + size + 2
