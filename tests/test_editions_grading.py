"""The Korean exercise notebooks, filled with the solutions' code, grade fully passed.

Only the markdown of a Korean exercise notebook differs from the English one; its code cells are
the exercise cells generated from ``solutions/`` (same cell ids) behind one language setup cell.
Putting each solution code cell in place of its stub gives the notebook a Korean learner who solved
everything would hand in.

Every such notebook is proven to be its solution notebook's code behind the setup cell, and one of
them is graded end to end. What running the others would add is tested elsewhere, once each: every
solution notebook runs and passes in a kernel (``tests/grading/test_kernel.py``), every Korean
exercise notebook runs with its setup cell and grades as not attempted (``tests/test_editions.py``),
the setup cell makes the checks speak Korean, and no check judges differently in Korean, for every
correct and wrong variant (``tests/test_checks_i18n.py``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tfmcourse import editions, nbtools
from tfmcourse.build import strip_solutions
from tfmcourse.grading.kernel import grade_notebook

ROOT = Path(__file__).resolve().parent.parent
KOREAN_EXERCISES = sorted((ROOT / "ko" / "exercises").glob("*.ipynb"))
# graded end to end: the lesson with the most exercises among the quick ones
GRADED = ROOT / "ko" / "exercises" / "09_training_and_inference.ipynb"


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


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.id, c.source) for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("korean", KOREAN_EXERCISES, ids=lambda p: p.name)
def test_a_filled_korean_exercise_notebook_is_its_solution_notebook_behind_the_language_setup(korean):
    setup = editions.language_setup_cell("ko")
    filled = code_cells(filled_with_solutions(korean))
    assert filled[0] == (setup.id, setup.source), f"{korean.name} must select Korean before any code"
    assert filled[1:] == code_cells(nbtools.read(ROOT / "solutions" / korean.name))


@pytest.mark.slow
def test_a_korean_exercise_notebook_filled_with_the_solutions_passes_every_exercise(tmp_path):
    assert GRADED in KOREAN_EXERCISES
    path = tmp_path / GRADED.name  # same name: the grader finds the lesson from it
    nbformat.write(filled_with_solutions(GRADED), path)
    report = grade_notebook(path)
    assert report.error is None, report.error
    assert len(report.exercises) > 1, "the graded Korean notebook has several exercises"
    failures = {e.name: f"{e.status}: {e.message}" for e in report.exercises if e.status != "passed"}
    assert not failures, failures
    assert report.score == report.max_score
