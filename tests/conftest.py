"""Test-suite wide configuration: markers follow the directory a test lives in."""

from __future__ import annotations

from pathlib import Path

import pytest

# The cluster fixtures (control plane, operator, web service, demo site) for every suite.
pytest_plugins = ["tests.support.fixtures"]

_MARKER_BY_DIRECTORY = {"unit": "unit", "integration": "integration", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for part in Path(str(item.fspath)).parts:
            marker = _MARKER_BY_DIRECTORY.get(part)
            if marker:
                item.add_marker(getattr(pytest.mark, marker))
