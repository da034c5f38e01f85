"""Storage tests run against a real Azurite (tests/_azurite.py) and real local folders."""

from __future__ import annotations

import pytest

from tests._azurite import azurite, azurite_container, azurite_service, put_blobs  # noqa: F401  (fixtures, helper)


@pytest.fixture
def environ(azurite) -> dict[str, str]:  # noqa: F811
    """The environment that points cvbulk.storage at the test's Azurite."""
    return azurite.environ()
