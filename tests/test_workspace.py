"""The learner's workspace: copies of notebooks/ and exercises/ in work/, never overwritten."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tfmcourse.workspace import (
    FIRST_LESSON,
    MARKER,
    WorkspaceError,
    find_workspace,
    lab_command,
    sync,
    workspace_dir,
)


@pytest.fixture
def course(tmp_path):
    """A small fake course: two lessons, one exercise notebook, solutions, a checkpoint."""
    root = tmp_path / "course"
    for rel, text in {
        "notebooks/00_start_here.ipynb": "lesson 00",
        "notebooks/01_a.ipynb": "lesson 01",
        "notebooks/figures/map.png": "png",
        "notebooks/.ipynb_checkpoints/01_a-checkpoint.ipynb": "checkpoint",
        "exercises/01_a.ipynb": "exercise 01",
        "solutions/01_a.ipynb": "solution 01",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_first_sync_copies_notebooks_and_exercises_with_the_same_layout(course):
    report = sync(course)
    work = course / "work"
    assert report.workspace == work
    assert sorted(report.copied) == [
        "exercises/01_a.ipynb",
        "notebooks/00_start_here.ipynb",
        "notebooks/01_a.ipynb",
        "notebooks/figures/map.png",
    ]
    assert (work / "exercises/01_a.ipynb").read_text() == "exercise 01"
    assert (work / "notebooks/figures/map.png").read_text() == "png"
    assert not (work / "solutions").exists(), "solutions are for instructors"
    assert not (work / "notebooks/.ipynb_checkpoints").exists()
    assert json.loads((work / MARKER).read_text())["lang"] == "en"
    assert "created" in report.summary()


def test_resync_never_overwrites_a_learners_file_and_adds_new_notebooks(course):
    sync(course)
    mine = course / "work/exercises/01_a.ipynb"
    mine.write_text("my answers")
    (course / "work/notebooks/00_start_here.ipynb").unlink()  # deleted by the learner: restored
    (course / "exercises/01_a.ipynb").write_text("exercise 01, updated upstream")
    (course / "notebooks/02_b.ipynb").write_text("lesson 02, new after a git pull")
    report = sync(course)
    assert mine.read_text() == "my answers"
    assert sorted(report.copied) == ["notebooks/00_start_here.ipynb", "notebooks/02_b.ipynb"]
    assert "exercises/01_a.ipynb" in report.kept
    assert (course / "work/notebooks/02_b.ipynb").read_text() == "lesson 02, new after a git pull"
    assert "untouched" in report.summary()


def test_korean_edition_is_copied_into_its_own_workspace(course):
    with pytest.raises(WorkspaceError, match="'ko' edition is not available"):
        sync(course, lang="ko")
    for rel in ("ko/notebooks/00_start_here.ipynb", "ko/exercises/01_a.ipynb"):
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (course / rel).write_text("한국어")
    report = sync(course, lang="ko")
    assert report.workspace == workspace_dir(course, "ko") == course / "work" / "ko"
    assert (course / "work/ko/notebooks/00_start_here.ipynb").read_text() == "한국어"
    assert (course / "work/ko/exercises/01_a.ipynb").read_text() == "한국어"
    assert not (course / "work/notebooks").exists()
    with pytest.raises(WorkspaceError, match="unknown course language 'fr'"):
        sync(course, lang="fr")


def test_find_workspace_from_a_folder_inside_it(course, tmp_path):
    sync(course)
    assert find_workspace(course / "work/exercises") == course / "work"
    assert find_workspace(course / "notebooks") is None


def test_lab_command_roots_jupyter_at_the_workspace_on_the_first_lesson(course):
    cmd = lab_command("jupyter", course / "work", ["--no-browser"])
    assert cmd[:2] == ["jupyter", "lab"]
    assert f"--ServerApp.root_dir={(course / 'work').resolve()}" in cmd
    assert cmd[-1] == FIRST_LESSON == "notebooks/00_start_here.ipynb"
    assert "--no-browser" in cmd


def test_the_course_first_lesson_exists_and_work_is_ignored_by_git(root):
    assert (root / FIRST_LESSON).is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "work/exercises/06_x.ipynb"], cwd=root, capture_output=True
    )
    assert ignored.returncode == 0, "work/ must be git-ignored"


def test_lab_sync_only_from_the_command_line(course):
    (course / "tfmcourse").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "lab", "--sync-only"],
        cwd=course,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "created" in out and (course / "work/exercises/01_a.ipynb").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "lab", "--sync-only", "--lang", "ko"],
        cwd=course,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "not available" in bad.stderr


def test_resync_says_which_of_the_learners_copies_have_a_newer_course_version(course):
    sync(course)
    (course / "notebooks/01_a.ipynb").write_text("lesson 01, fixed upstream")
    report = sync(course)
    assert report.changed == ["notebooks/01_a.ipynb"]
    assert (course / "work/notebooks/01_a.ipynb").read_text() == "lesson 01"
    assert "newer version of notebooks/01_a.ipynb" in report.summary()
    (course / "work/notebooks/01_a.ipynb").unlink()  # the learner takes the new version
    report = sync(course)
    assert report.copied == ["notebooks/01_a.ipynb"] and report.changed == []
    assert (course / "work/notebooks/01_a.ipynb").read_text() == "lesson 01, fixed upstream"
    assert sync(course).changed == []


def test_sync_of_an_empty_edition_still_makes_a_workspace(tmp_path):
    for d in ("notebooks", "exercises"):
        (tmp_path / d).mkdir()
    report = sync(tmp_path)
    assert report.copied == [] and (tmp_path / "work" / MARKER).is_file()
