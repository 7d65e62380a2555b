"""Repository hygiene: clean committed notebooks, a side-effect-free package, the CI entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
ALL = LESSONS + SOLUTIONS + EXERCISES


def _nb(path):
    """The notebook as a dict, with every cell's ``source`` joined into one string."""
    return nbformat.read(str(path), as_version=4)


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_has_no_widget_state_or_timing_metadata(path):
    nb = _nb(path)
    assert "widgets" not in nb["metadata"], "widget state must not be committed"
    for i, cell in enumerate(nb["cells"]):
        md = cell.get("metadata", {})
        assert "execution" not in md and "ExecuteTime" not in md, f"cell {i} carries execution timing"
        for out in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in out.get("data", {}), (
                f"cell {i}: widget view"
            )
            assert out.get("output_type") != "error", f"cell {i} was committed with an error output"


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_notebooks_have_no_outputs(path):
    for i, cell in enumerate(_nb(path)["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {i} has outputs"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lessons_and_solutions_are_committed_executed_in_order(path):
    counts = [
        c["execution_count"] for c in _nb(path)["cells"] if c["cell_type"] == "code" and c["source"].strip()
    ]
    assert counts and all(isinstance(c, int) for c in counts), "run it with `tfmcourse run` before committing"
    assert counts == sorted(counts), "cells were run out of order: use Restart & Run All (`tfmcourse run`)"


def test_the_twelve_lessons_exist_in_order():
    names = [p.name for p in LESSONS]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(12)], names


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_asserts_its_claims_and_points_to_its_exercise(path):
    nb = _nb(path)
    code = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "code")
    text = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "markdown")
    if path.name.startswith("00_"):
        return
    assert re.search(r"^\s*assert\b", code, re.M), "a lesson backs its claims with assert cells"
    exercise = ROOT / "exercises" / path.name
    if exercise.exists():
        assert f"../exercises/{path.name}" in text, "the lesson ends with a link to its exercise notebook"


def test_import_has_no_side_effects():
    code = (
        "import random, torch; s = torch.get_rng_state(); r = random.getstate();\n"
        "import tfmcourse, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(tfmcourse.__path__, 'tfmcourse.'):\n"
        "    if m.name != 'tfmcourse.__main__': importlib.import_module(m.name)\n"
        "assert torch.equal(s, torch.get_rng_state()) and r == random.getstate(), 'import changed an RNG'\n"
        "assert torch.get_default_dtype() == torch.float32\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"importing tfmcourse printed: {proc.stdout!r}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test\b", ci, re.M), ".ci/run must run the README's test command"


def test_no_downloads_at_run_time():
    """No dataset/hub downloads: the course runs offline."""
    pattern = re.compile(
        r"torchtext|spacy\.load|urlretrieve|requests\.get|hf_hub|from_pretrained|torch\.hub|https?://\S+\.(zip|tar|gz|pt|bin)"
    )
    offenders = []
    for path in list((ROOT / "tfmcourse").rglob("*.py")) + LESSONS + SOLUTIONS:
        if pattern.search(path.read_text(encoding="utf-8")):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_make_lab_opens_the_workspace_through_tfmcourse_lab():
    # `tfmcourse lab` copies the course into work/ and roots JupyterLab there on the first lesson
    # (tests/test_workspace.py); make passes the edition and JupyterLab's options through.
    proc = subprocess.run(
        ["make", "-n", "lab", "LAB_ARGS=--no-browser", "COURSE_LANG=ko"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [l for l in proc.stdout.splitlines() if "tfmcourse lab" in l]
    assert "--lang ko" in line and line.rstrip().endswith("--no-browser")
    assert ("--allow-root" in line) == (__import__("os").getuid() == 0), "JupyterLab refuses root without it"
