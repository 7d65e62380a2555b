"""Progress: checks run in a learner's workspace record their outcome; `tfmcourse progress` shows it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tfmcourse import progress
from tfmcourse.checks import EXERCISES, CheckFailed, check_causal_mask, check_padding_mask
from tfmcourse.workspace import sync


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    course = tmp_path / "course"
    for d in ("notebooks", "exercises"):
        (course / d).mkdir(parents=True)
        (course / d / "06_x.ipynb").write_text("{}")
    work = sync(course).workspace
    monkeypatch.chdir(work / "exercises")  # where the kernel of an exercise notebook runs
    return work


def test_exercise_numbers_follow_the_stubs():
    assert progress.exercise_number("causal_mask") == "6.1"
    assert progress.exercise_number("scaled_dot_product_attention") == "6.3"
    assert progress.exercise_number("rnn_cell") == "1.1"


def test_a_pass_and_a_rendered_failure_are_recorded_in_the_workspace(workspace, capsys):
    check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1))
    with pytest.raises(CheckFailed) as info:
        check_padding_mask(lambda tokens, pad_id: tokens == 0)
    info.value._render_traceback_()  # what IPython does when it shows the failure
    done = progress.load(workspace)
    assert done["causal_mask"]["status"] == "passed"
    assert done["padding_mask"]["status"] == "failed"
    table = progress.render(workspace)
    assert "✓ 6.1   causal_mask" in table and "✗ 6.2   padding_mask" in table
    assert "· 6.3   scaled_dot_product_attention" in table and "not attempted" in table
    assert "Lesson 06   1/3 passed" in table
    assert f"1 of {len(EXERCISES)} exercises passed." in table


def test_not_attempted_is_recorded_and_a_later_pass_replaces_a_failure(workspace):
    def stub(T):
        raise NotImplementedError("Exercise 6.1: …")

    with pytest.raises(CheckFailed) as info:
        check_causal_mask(stub)
    info.value._render_traceback_()
    assert progress.load(workspace)["causal_mask"]["status"] == "not attempted"
    check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1))
    assert progress.load(workspace)["causal_mask"]["status"] == "passed"


def test_nothing_is_recorded_outside_a_workspace_or_its_exercises(tmp_path, monkeypatch, workspace):
    monkeypatch.chdir(workspace / "notebooks")  # lesson 00 demonstrates a check: not the learner's work
    assert progress.record("causal_mask", "passed") is None
    monkeypatch.chdir(tmp_path)
    assert progress.record("causal_mask", "passed") is None
    assert progress.load(workspace) == {}
    assert "No workspace found" in progress.render(None)
    with pytest.raises(ValueError, match="status must be one of"):
        progress.record("causal_mask", "great")


def test_progress_command_reads_the_workspace(workspace):
    progress.record("scaled_dot_product_attention", "passed")
    out = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "progress", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "✓ 6.3   scaled_dot_product_attention" in out and "passed" in out


def test_exercise_numbers_match_the_stubs_of_every_exercise_notebook(root):
    from tfmcourse import nbtools

    for name, ex in EXERCISES.items():
        (path,) = (root / "exercises").glob(f"{ex.lesson:02d}_*.ipynb")
        cells = [c.source for c in nbtools.read(path).cells if c.cell_type == "code"]
        home = [src for src in cells if f"def {name}(" in src or f"class {name}(" in src]
        assert home, f"{path.name} has no definition of {name}"
        number = progress.exercise_number(name)
        assert f"Exercise {number}:" in home[0], f"{name} is numbered {number}, its stub says otherwise"


@pytest.fixture
def korean_workspace(tmp_path, monkeypatch):
    """A course with both editions, and the learner's Korean workspace work/ko/ made from it."""
    course = tmp_path / "course"
    for d in ("notebooks", "exercises", "solutions", "tfmcourse", "ko/notebooks", "ko/exercises"):
        (course / d).mkdir(parents=True)
    for d in ("notebooks", "exercises", "ko/notebooks", "ko/exercises"):
        (course / d / "06_x.ipynb").write_text("{}")
    sync(course)
    work = sync(course, "ko").workspace
    assert work == course / "work" / "ko"
    monkeypatch.chdir(work / "exercises")
    return work


def test_checks_run_in_a_korean_workspace_are_shown_in_korean(korean_workspace):
    from tfmcourse.checks import language

    with language("ko"):  # what the setup cell of a Korean exercise notebook does
        check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1))
    assert progress.load(korean_workspace)["causal_mask"]["status"] == "passed"
    assert progress.workspace_language(korean_workspace) == "ko"
    table = progress.render(korean_workspace)
    assert "06강   3개 중 1개 통과" in table and "✓ 6.1   causal_mask" in table
    assert "아직 안 함" in table and f"연습 문제 {len(EXERCISES)}개 중 1개를 통과했습니다." in table
    assert "passed" not in table.replace("1개 통과", "")
    english = progress.render(korean_workspace, "en")
    assert "Lesson 06   1/3 passed" in english and not any("가" <= ch <= "힣" for ch in english)


def test_progress_command_follows_the_language(korean_workspace, monkeypatch, capsys):
    """The command's own logic, in this process (test_progress_command_reads_the_workspace starts it)."""
    from tfmcourse import cli

    course = korean_workspace.parent.parent

    def run(*args, cwd):
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        assert cli.main(["progress", *args]) == 0
        return capsys.readouterr().out

    progress.record("causal_mask", "failed")
    mine = run(cwd=korean_workspace / "exercises")  # inside work/ko: the workspace's own language
    assert "✗ 6.1   causal_mask" in mine and "실패" in mine
    asked = run("--lang", "ko", cwd=course)  # from the course folder: work/ko, not the English work/
    assert "✗ 6.1   causal_mask" in asked and "06강   3개 중 0개 통과" in asked
    english = run(cwd=course)  # the English workspace has no record
    assert "· 6.1   causal_mask" in english and "Lesson 06   0/3 passed" in english
    forced = run("--lang", "en", "--workspace", str(korean_workspace), cwd=course)
    assert "✗ 6.1   causal_mask" in forced and "failed" in forced
