"""Export tests: the Azurite fixtures for exports into a container."""

from __future__ import annotations

from tests._azurite import azurite, azurite_container, azurite_service  # noqa: F401  (fixtures)
