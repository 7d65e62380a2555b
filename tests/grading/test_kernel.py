"""`tfmcourse grade`: a notebook run top to bottom in a fresh kernel, graded from its cells' outcomes.

Each notebook here is executed exactly once. The solution notebooks are not
collected by nbval: grading one runs every cell and asserts each ran without
error, which is nbval's lax check and the grading check in one execution.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tfmcourse import nbtools
from tfmcourse.checks import EXERCISES
from tfmcourse.grading import kernel, notebook
from tfmcourse.grading.report import Status

ROOT = Path(__file__).resolve().parent.parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISE_NBS = sorted((ROOT / "exercises").glob("*.ipynb"))
LESSON6 = [n for n, e in EXERCISES.items() if e.lesson == 6]


def digest(p: Path) -> bytes:
    return p.read_bytes()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfmcourse", *args], capture_output=True, text=True)


def edited(tmp_path: Path, source: Path, edit) -> Path:
    """A copy of ``source`` with ``edit(cells)`` applied (a list of nbformat cells, changed in place)."""
    nb = nbtools.read(source)
    edit(nb.cells)
    dst = tmp_path / source.name
    nbtools.write(nb, dst)
    return dst


def index_of(cells, pattern: str) -> int:
    return next(
        i for i, c in enumerate(cells) if c.cell_type == "code" and re.search(pattern, c.source, re.M)
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_runs_top_to_bottom_and_passes_every_exercise(path):
    before = digest(path)
    runs = kernel.run(path)
    assert len(runs) == len(notebook.code_cells(notebook.read(path))), "every code cell ran"
    assert [(c.label, c.ename, c.evalue[:300]) for c in runs if c.outcome != "ok"] == []
    report = kernel.grade_cells(path, runs, timeout=kernel.DEFAULT_CELL_TIMEOUT)
    assert report.error is None and report.exercises
    assert {e.name: e.status for e in report.exercises} == {e.name: Status.PASSED for e in report.exercises}
    assert (
        report.score
        == report.max_score
        == sum(e.points for e in EXERCISES.values() if e.lesson == report.lesson)
    )
    assert digest(path) == before, "grading must never modify the notebook"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.name)
def test_unfilled_exercise_notebook_fails_exactly_at_its_checks(path):
    runs = kernel.run(path)
    failed = {c.index for c in runs if c.outcome != "ok"}
    checks = {c.index for c in runs if notebook.check_calls(c.source)}
    assert checks, "an exercise notebook has check cells"
    assert failed == checks, (
        f"failing cells other than checks: {failed - checks}; passing checks: {checks - failed}"
    )
    assert {c.ename for c in runs if c.index in failed} == {"ExerciseNotAttempted"}
    report = kernel.grade_cells(path, runs, timeout=kernel.DEFAULT_CELL_TIMEOUT)
    assert report.error is None
    assert {e.status for e in report.exercises} == {Status.NOT_ATTEMPTED} and report.score == 0


WRONG_SDPA = (
    "# NBVAL_RAISES_EXCEPTION\n"
    "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
    "    s = q @ k.transpose(-2, -1)\n"
    "    if attn_mask is not None:\n"
    "        s = s.masked_fill(attn_mask, float('-inf'))\n"
    "    w = torch.softmax(s, -1).nan_to_num(0.0)\n"
    "    return w @ v, w\n"
)


@pytest.mark.slow
def test_markers_never_change_a_verdict_and_the_json_names_the_mistake(tmp_path):
    """nbval's markers and Jupyter's tags on check cells: a wrong answer still fails, a skipped check still runs."""

    def edit(cells):
        cells[index_of(cells, r"^def scaled_dot_product_attention\(")].source = WRONG_SDPA
        sdpa_check = cells[index_of(cells, r"^check_scaled_dot_product_attention\(")]
        sdpa_check.source = "# NBVAL_RAISES_EXCEPTION\n" + sdpa_check.source
        sdpa_check.metadata["tags"] = ["raises-exception"]
        cells[
            index_of(cells, r"^def padding_mask\(")
        ].source = "def padding_mask(tokens, pad_id):\n    return tokens == pad_id\n"
        pm_check = cells[index_of(cells, r"^check_padding_mask\(")]
        pm_check.source = "# NBVAL_SKIP\n" + pm_check.source
        pm_check.metadata["tags"] = ["skip-execution"]

    path = edited(tmp_path, ROOT / "exercises" / "06_scaled_dot_product_attention.ipynb", edit)
    before = digest(path)
    out = tmp_path / "report.json"
    proc = cli("grade", str(path), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (nb,) = json.loads(out.read_text())["notebooks"]
    assert set(nb) >= {"path", "lesson", "score", "max_score", "error", "exercises"} and nb["error"] is None
    by = {e["name"]: e for e in nb["exercises"]}
    sdpa = by["scaled_dot_product_attention"]
    assert sdpa["status"] == "failed" and sdpa["points"] == 0 and "not scaled" in sdpa["message"]
    assert by["padding_mask"]["status"] == "passed"
    assert by["causal_mask"]["status"] == "not attempted"
    assert nb["score"] == EXERCISES["padding_mask"].points
    assert nb["max_score"] == sum(EXERCISES[n].points for n in LESSON6)
    assert "✗ failed" in proc.stdout and "not scaled" in proc.stdout
    assert digest(path) == before


@pytest.mark.slow
def test_a_cell_that_raises_makes_the_notebook_error_naming_the_cell(tmp_path):
    """A NameError after exercise 6.1 (even under a marker): later exercises cannot count."""
    raising = nbformat.v4.new_code_cell("# NBVAL_RAISES_EXCEPTION\nundefined_name + 1")
    raising.metadata["tags"] = ["raises-exception"]

    def edit(cells):
        cells.insert(index_of(cells, r"^check_causal_mask\(") + 1, raising)

    path = edited(tmp_path, ROOT / "solutions" / "06_scaled_dot_product_attention.ipynb", edit)
    cell_number = 1 + next(i for i, c in enumerate(nbtools.read(path).cells) if "undefined_name" in c.source)
    out = tmp_path / "report.json"
    proc = cli("grade", str(path), "--json", str(out))
    assert proc.returncode == 2, "a notebook that does not run top to bottom is an error"
    (nb,) = json.loads(out.read_text())["notebooks"]
    assert nb["error"] and f"cell {cell_number} raised NameError" in nb["error"]
    by = {e["name"]: e for e in nb["exercises"]}
    assert by["causal_mask"]["status"] == "passed"
    for name in ("padding_mask", "scaled_dot_product_attention"):
        assert by[name]["status"] == "error" and f"cell {cell_number}" in by[name]["message"]
    assert nb["score"] == EXERCISES["causal_mask"].points
    assert f"cell {cell_number} raised NameError" in proc.stdout


@pytest.mark.slow
def test_a_cell_past_the_timeout_makes_the_notebook_error_naming_the_cell(tmp_path):
    def edit(cells):
        cells.insert(
            index_of(cells, r"^check_causal_mask\(") + 1,
            nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
        )

    path = edited(tmp_path, ROOT / "solutions" / "06_scaled_dot_product_attention.ipynb", edit)
    cell_number = 1 + next(i for i, c in enumerate(nbtools.read(path).cells) if "sleep(120)" in c.source)
    report = kernel.grade_notebook(path, timeout=20)
    assert report.error and f"cell {cell_number} ran past the cell timeout of 20 s" in report.error
    by = {e.name: e for e in report.exercises}
    assert by["causal_mask"].status == Status.PASSED
    assert by["padding_mask"].status == Status.ERROR and "timeout" in by["padding_mask"].message
    assert report.score == EXERCISES["causal_mask"].points


@pytest.mark.slow
def test_a_syntax_error_in_a_definition_is_an_error_not_a_crash(tmp_path):
    def edit(cells):
        cells[
            index_of(cells, r"^def causal_mask\(")
        ].source = "def causal_mask(T):\n    return torch.ones(T, T).triu(1\n"
        del cells[index_of(cells, r"^check_padding_mask\(")]

    report = kernel.grade_notebook(
        edited(tmp_path, ROOT / "exercises" / "06_scaled_dot_product_attention.ipynb", edit)
    )
    by = {e.name: e for e in report.exercises}
    assert by["causal_mask"].status == Status.ERROR and "NameError" in by["causal_mask"].message
    assert report.error and "SyntaxError" in report.error
    assert by["padding_mask"].status == Status.NOT_ATTEMPTED and "no check cell" in by["padding_mask"].message


def test_an_unreadable_notebook_scores_zero_of_its_lessons_points(tmp_path):
    bad = tmp_path / "06_broken.ipynb"
    bad.write_text("{ not json")
    out = tmp_path / "r.json"
    proc = cli("grade", str(bad), str(tmp_path / "07_missing.ipynb"), "--json", str(out))
    assert proc.returncode == 2
    broken, missing = json.loads(out.read_text())["notebooks"]
    assert broken["error"] == "not valid notebook JSON" and broken["score"] == 0
    assert broken["max_score"] == sum(EXERCISES[n].points for n in LESSON6)
    assert {e["status"] for e in broken["exercises"]} == {"error"}
    assert missing["error"] == "no such file" and missing["max_score"] == sum(
        e.points for e in EXERCISES.values() if e.lesson == 7
    )
    assert "0/4 points" in proc.stdout and "not valid notebook JSON" in proc.stdout


def test_a_folder_needs_secure_grading(tmp_path):
    (tmp_path / "alice").mkdir()
    proc = cli("grade", str(tmp_path))
    assert proc.returncode == 2
    assert "needs --secure" in proc.stderr and "no such file" not in proc.stdout + proc.stderr
