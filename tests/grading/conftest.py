"""Fixtures shared by the grading tests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def shared_folder():
    """A folder every user may write to: learner code (running, when the grader is root, as another
    user) leaves its marks here, e.g. the pids of the processes it started."""
    path = Path(tempfile.mkdtemp(prefix="tfmcourse-shared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)
