"""Which uploaded notebook is graded for which lesson (no grading runs here)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.export.conftest import ROOT
from tfmcourse.export.bundle import GraderConfig, exercise_notebooks
from tfmcourse.export.submission import (
    GradingFailed,
    _uploaded_notebooks,
    grading_deadline,
    match_lessons,
    run_grader,
)


def config(*lessons: int) -> GraderConfig:
    return GraderConfig(lessons=list(lessons), notebooks=exercise_notebooks(ROOT, list(lessons)))


def names(chosen: dict[int, Path | None]) -> dict[int, str | None]:
    return {k: p.name if p else None for k, p in chosen.items()}


def test_a_single_renamed_notebook_is_the_single_lessons_notebook():
    chosen, notes = match_lessons([Path("homework (2).ipynb")], config(6))
    assert names(chosen) == {6: "homework (2).ipynb"} and notes == []


def test_lessons_are_found_by_their_prefix_and_unknown_names_are_reported():
    upload = [Path("03_mine.ipynb"), Path("06_scaled_dot_product_attention.ipynb"), Path("draft.ipynb")]
    chosen, notes = match_lessons(upload, config(3, 6))
    assert names(chosen) == {3: "03_mine.ipynb", 6: "06_scaled_dot_product_attention.ipynb"}
    assert any("draft.ipynb" in n and "no lesson recognised" in n for n in notes)


def test_several_notebooks_for_a_lesson_grade_the_expected_name_or_none():
    exact = Path("06_scaled_dot_product_attention.ipynb")
    chosen, notes = match_lessons([Path("06_try1.ipynb"), exact], config(6))
    assert names(chosen) == {6: exact.name}
    assert any("not graded: 06_try1.ipynb" in n for n in notes)
    chosen, notes = match_lessons([Path("06_try1.ipynb"), Path("06_try2.ipynb")], config(6))
    assert names(chosen) == {6: None}
    assert any("none was graded; upload only one" in n for n in notes)


def test_links_in_an_upload_are_listed_never_followed(tmp_path):
    upload = tmp_path / "upload"
    (upload / "sub").mkdir(parents=True)
    (upload / "sub" / "06_a.ipynb").write_text("{}")
    (upload / ".ipynb_checkpoints").mkdir()
    (upload / ".ipynb_checkpoints" / "06_a-checkpoint.ipynb").write_text("{}")
    os.symlink(ROOT / "solutions" / "06_scaled_dot_product_attention.ipynb", upload / "06_link.ipynb")
    os.symlink(ROOT / "solutions", upload / "linked_folder")
    notebooks, others = _uploaded_notebooks(upload)
    assert [p.relative_to(upload).as_posix() for p in notebooks] == ["sub/06_a.ipynb"]
    assert others == ["06_link.ipynb", "linked_folder"]


def test_the_grading_deadline_grows_with_the_exercises_and_their_limit():
    assert grading_deadline(config(3, 6)) > grading_deadline(config(6))
    slow = GraderConfig(lessons=[6], notebooks={}, timeout=60)
    assert grading_deadline(slow) > grading_deadline(config(6))


def test_a_grader_past_its_deadline_is_killed_with_its_children(tmp_path):
    fake = tmp_path / "python"
    pidfile = tmp_path / "child.pid"
    fake.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {pidfile}\nwait\n")
    fake.chmod(0o755)
    with pytest.raises(GradingFailed, match="did not finish within 2 s"):
        run_grader(
            [], seed=1, json_path=str(tmp_path / "r.json"), config=config(6), python=str(fake), deadline=2
        )
    child = int(pidfile.read_text())
    for _ in range(50):  # the kill is asynchronous: give the kernel a moment to reap it
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False


def test_a_grader_that_writes_no_report_is_a_grading_failure(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(GradingFailed, match=r"exited with status 3.*something broke"):
        run_grader([], seed=1, json_path=str(tmp_path / "r.json"), config=config(6), python=str(fake))
