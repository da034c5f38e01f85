"""The route table of the labelling and delivery operations (exports, artifacts, suggestions,
region proposals, images from predictions, image performances), added after the core table."""

from __future__ import annotations

from ._routes_exports import export_routes
from ._routes_performance import performance_routes
from ._routes_suggestions import suggestion_routes
from ._routing import Handler

__all__ = ["ops_routes"]


def ops_routes() -> list[tuple[str, str, Handler, str]]:
    """(method, path under the training prefix, handler, operationId)."""
    return [*export_routes(), *suggestion_routes(), *performance_routes()]
