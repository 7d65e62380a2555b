"""Shared fixtures. Notebooks under notebooks/ and solutions/ are collected by nbval (lax)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
