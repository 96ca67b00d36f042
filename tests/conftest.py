"""Shared pytest setup: e2e tests are marked and need the local control plane."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Fast unit tests first, then the e2e tests that share one cluster.
    items.sort(key=lambda item: 1 if item.get_closest_marker("e2e") else 0)
