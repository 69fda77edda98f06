"""The `figures` fixture, and the plugin that records what pytest saw (observed.py)."""

from __future__ import annotations

import pytest

from . import observed
from .figures import Figures


def pytest_configure(config: pytest.Config) -> None:
    # `make stress` loads the plugin from the start (-p); a plain `pytest tests/reliability`
    # gets it here, when this file is loaded.
    if not config.pluginmanager.is_registered(observed):
        config.pluginmanager.register(observed, "tests.reliability.observed")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Where a test records its rows for docs/reliability.md. Taking it is a promise: the
    report fails when a test that takes it recorded nothing."""
    return Figures(request.node.nodeid)
