"""`tfmcourse grade`: solutions pass, unfilled exercises are not attempted, mistakes are named."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tfmcourse import nbtools
from tfmcourse.checks import EXERCISES
from tfmcourse.grading.nbgrade import CHECK_CALL, _run_nbval, grade_notebook

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISE_NBS = sorted((ROOT / "exercises").glob("*.ipynb"))


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_passes_every_exercise(path):
    before = _digest(path)
    report = grade_notebook(path)
    assert report.error is None, report.error
    assert report.exercises, "a solution notebook grades at least one exercise"
    failures = {e.name: f"{e.status}: {e.message}" for e in report.exercises if e.status != "passed"}
    assert not failures, failures
    assert report.score == report.max_score
    assert _digest(path) == before, "grading must never modify the notebook"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.name)
def test_unfilled_exercise_fails_exactly_at_its_checks(path):
    records, log = _run_nbval(path, timeout=600)
    cells = [r for r in records if r["kind"] == "cell"]
    assert cells, log
    failed = {r["index"] for r in cells if r["outcome"] != "passed"}
    checks = {r["index"] for r in cells if CHECK_CALL.search(r["source"])}
    assert checks, "an exercise notebook has check cells"
    assert failed == checks, (
        f"cells failing other than the check cells: {sorted(failed - checks)}; "
        f"check cells that did not fail: {sorted(checks - failed)}"
    )
    assert {r["ename"] for r in cells if r["index"] in failed} == {"ExerciseNotAttempted"}
    report = grade_notebook(path)
    assert {e.status for e in report.exercises} == {"not attempted"}
    assert report.score == 0


def _with_implementation(tmp_path: Path, name: str, code: str) -> Path:
    src = ROOT / "exercises" / "06_scaled_dot_product_attention.ipynb"
    nb = nbtools.read(src)
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(rf"^def {name}\(", cell.source, re.M):
            cell.source = code
    dst = tmp_path / src.name
    nbtools.write(nb, dst)
    return dst


@pytest.mark.slow
def test_wrong_implementation_is_failed_with_the_named_mistake(tmp_path):
    path = _with_implementation(
        tmp_path,
        "scaled_dot_product_attention",
        (
            "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
            "    s = q @ k.transpose(-2, -1)\n"
            "    if attn_mask is not None:\n"
            "        s = s.masked_fill(attn_mask, float('-inf'))\n"
            "    w = torch.softmax(s, -1).nan_to_num(0.0)\n"
            "    return w @ v, w\n"
        ),
    )
    before = _digest(path)
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "grade", str(path), "--json", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    (nb,) = data["notebooks"]
    assert set(nb) >= {"path", "score", "max_score", "exercises"}
    by_name = {e["name"]: e for e in nb["exercises"]}
    sdpa = by_name["scaled_dot_product_attention"]
    assert sdpa["status"] == "failed" and sdpa["points"] == 0 and sdpa["max_points"] == 2
    assert "not scaled" in sdpa["message"]
    assert by_name["causal_mask"]["status"] == "not attempted"
    assert nb["score"] == 0 and nb["max_score"] == sum(e.points for e in EXERCISES.values() if e.lesson == 6)
    assert "✗ failed" in proc.stdout and "not scaled" in proc.stdout
    assert _digest(path) == before


@pytest.mark.slow
def test_syntax_error_in_definition_is_an_error_not_a_crash(tmp_path):
    path = _with_implementation(
        tmp_path, "causal_mask", "def causal_mask(T):\n    return torch.ones(T, T).triu(1\n"
    )
    report = grade_notebook(path)
    by = {e.name: e for e in report.exercises}
    assert by["causal_mask"].status == "error" and "NameError" in by["causal_mask"].message


def test_unreadable_notebooks_are_reported_with_exit_status_2(tmp_path):
    bad = tmp_path / "06_broken.ipynb"
    bad.write_text("{ not json")
    proc = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "grade", str(bad), str(tmp_path / "missing.ipynb")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "not a notebook" in proc.stdout and "no such file" in proc.stdout


@pytest.mark.slow
def test_deleted_check_cell_counts_as_not_attempted(tmp_path):
    src = ROOT / "solutions" / "06_scaled_dot_product_attention.ipynb"
    nb = nbtools.read(src)
    nb.cells = [c for c in nb.cells if "check_padding_mask(" not in c.source]
    dst = tmp_path / src.name
    nbtools.write(nb, dst)
    by = {e.name: e for e in grade_notebook(dst).exercises}
    assert by["padding_mask"].status == "not attempted" and "no check cell" in by["padding_mask"].message
    assert by["causal_mask"].status == "passed"
