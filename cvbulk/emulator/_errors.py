"""Errors answered as the service does: HTTP status + ``{"code", "message"}``."""

from __future__ import annotations

__all__ = ["ApiError", "not_found"]


class ApiError(Exception):
    """Raised anywhere in a handler (or the store, in a worker thread); the app turns it into JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


def not_found(what: str, ident: str) -> ApiError:
    # The service's codes: NotFoundProject, NotFoundTag, NotFoundIteration, NotFoundImage, NotFoundDomain
    return ApiError(404, f"NotFound{what}", f"{what} not found: {ident}")
