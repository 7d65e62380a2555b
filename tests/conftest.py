"""Shared fixtures. Lessons under notebooks/ are collected by nbval (lax); solutions/ and exercises/
are executed once each by tests/grading/test_kernel.py."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# How `make test` (``-n 2 --dist loadgroup``) shares the work between its two pytest-xdist workers.
# A file is one unit of work, run by one worker: the cells of a lesson share one kernel, and a file's
# tests may share module fixtures. The files below hold slow tests that share nothing costly, so each
# of their tests is a unit of its own and runs on whichever worker is free.
SPREAD = {
    "tests/export/test_gradescope.py",
    "tests/export/test_prairielearn.py",
    "tests/grading/test_gradebook.py",
    "tests/grading/test_isolation.py",
    "tests/grading/test_kernel.py",
    "tests/grading/test_privileges.py",
    "tests/grading/test_secure.py",
    "tests/test_browser.py",
    "tests/test_checks_i18n.py",
    "tests/test_checks_messages.py",
    "tests/test_checks_seeds.py",
    "tests/test_editions_grading.py",
    "tests/test_mutants.py",
    "tests/test_progress.py",
}
# Units are handed out in the order of collection: the longest go first, so that no long one starts
# when the other worker is about to run out of work. Files not listed follow in their usual order.
# A misplaced entry only costs time.
LONGEST_FIRST = (
    "notebooks/09_training_and_inference.ipynb",
    "tests/grading/test_hostile_class.py",
    "tests/grading/test_gradebook.py",
    "tests/test_browser.py",
    "tests/test_editions.py",
    "notebooks/10_gpt.ipynb",
    "tests/grading/test_secure.py",
    "tests/grading/test_kernel.py",
    "tests/test_checks_seeds.py",
    "tests/export/test_prairielearn.py",
    "tests/export/test_gradescope.py",
    "tests/grading/test_privileges.py",
    "notebooks/02_bahdanau_attention.ipynb",
    "tests/experiments/test_lesson01.py",
    "notebooks/01_seq2seq_bottleneck.ipynb",
    "notebooks/07_multi_head_attention.ipynb",
    "notebooks/11_fast_inference.ipynb",
    "tests/test_repository.py",
    "tests/export/test_lms.py",
    "tests/test_checks_lessons_10_11_seeds.py",
    "notebooks/04_residual_connections.ipynb",
)


def _file(nodeid: str) -> str:
    return nodeid.split("::")[0]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def pytest_collection_modifyitems(config, items):
    """Notebook cells (nbval) and browser tests are slow: ``-m "not slow"`` skips them.
    The longest units of work come first."""
    for item in items:
        if item.path.suffix == ".ipynb" or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
    rank = {file: i for i, file in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_file(item.nodeid), len(rank)))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` groups by file except SPREAD (pytest-xdist 3.8 cannot read ``xdist_group``
    marks under pytest 9: it renames node ids, which pytest 9 no longer allows) and keeps the order
    of collection instead of putting the files with the most tests first."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFileLongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if _file(nodeid) in SPREAD else _file(nodeid)

    config.option.loadscopereorder = False
    return ByFileLongestFirst(config, log)
