"""The Korean exercise notebooks, filled with the solutions' code, grade fully passed.

Only the markdown of a Korean exercise notebook differs from the English one; its code cells are
the exercise cells generated from ``solutions/`` (same cell ids). Putting each solution code cell in
place of its stub gives the notebook a Korean learner who solved everything would hand in.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tfmcourse import nbtools
from tfmcourse.build import strip_solutions
from tfmcourse.grading.kernel import grade_notebook

ROOT = Path(__file__).resolve().parent.parent
KOREAN_EXERCISES = sorted((ROOT / "ko" / "exercises").glob("*.ipynb"))


def filled_with_solutions(korean: Path) -> nbformat.NotebookNode:
    """The Korean exercise notebook with every stubbed code cell replaced by its solution cell."""
    solution = nbtools.read(ROOT / "solutions" / korean.name)
    solved = {
        c.id: c.source for c in solution.cells if c.cell_type == "code" and "BEGIN SOLUTION" in c.source
    }
    nb = nbtools.read(korean)
    placed = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.id in solved:
            assert cell.source == strip_solutions(solved[cell.id]), (
                f"{korean.name} cell {cell.id} is not its stub"
            )
            cell.source = solved[cell.id]
            placed.add(cell.id)
    assert placed == set(solved) != set(), (
        f"{korean.name}: solution cells without a stub: {set(solved) - placed}"
    )
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("korean", KOREAN_EXERCISES, ids=lambda p: p.name)
def test_korean_exercises_filled_with_the_solutions_pass_every_exercise(korean, tmp_path):
    path = tmp_path / korean.name  # same name: the grader finds the lesson from it
    nbformat.write(filled_with_solutions(korean), path)
    report = grade_notebook(path)
    assert report.error is None, report.error
    assert report.exercises, "a Korean exercise notebook grades at least one exercise"
    failures = {e.name: f"{e.status}: {e.message}" for e in report.exercises if e.status != "passed"}
    assert not failures, failures
    assert report.score == report.max_score
