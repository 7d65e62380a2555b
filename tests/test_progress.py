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
