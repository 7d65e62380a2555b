"""Shared fixtures. Lessons under notebooks/ are collected by nbval (lax); solutions/ and exercises/
are executed once each by tests/grading/test_kernel.py."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def pytest_collection_modifyitems(config, items):
    """Notebook cells (nbval) and browser tests are slow: ``-m "not slow"`` skips them."""
    for item in items:
        if item.path.suffix == ".ipynb" or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
