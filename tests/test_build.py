"""The exercise builder: markers, stubs, learner-edit protection, --check."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from tfmcourse import nbtools
from tfmcourse.build import BuildError, build, plan, strip_solutions

SOLVED = '''def f(x):
    """Doc."""
    # BEGIN SOLUTION: Exercise 1.1: double x (about 1 line)
    y = 2 * x
    return y
    # END SOLUTION

def g():
    for i in range(2):
        # BEGIN SOLUTION: Exercise 1.2: nested (about 1 line)
        pass
        # END SOLUTION'''


def test_strip_solutions_keeps_signature_docstring_and_indentation():
    out = strip_solutions(SOLVED)
    assert out.splitlines()[:3] == [
        "def f(x):",
        '    """Doc."""',
        "    raise NotImplementedError('Exercise 1.1: double x (about 1 line)')",
    ]
    assert "        raise NotImplementedError('Exercise 1.2: nested (about 1 line)')" in out
    assert "2 * x" not in out and "pass" not in out
    compile(out, "<stub>", "exec")
    ns: dict = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError, match=r"Exercise 1\.1"):
        ns["f"](1)


@pytest.mark.parametrize(
    "src, match",
    [
        ("# BEGIN SOLUTION: Exercise 1.1: x\nx = 1", "never closed"),
        ("x = 1\n# END SOLUTION", "without BEGIN"),
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "which exercise"),
        (
            "# BEGIN SOLUTION: Exercise 1.1: a\n# BEGIN SOLUTION: Exercise 1.2: b\n# END SOLUTION",
            "inside another",
        ),
    ],
)
def test_malformed_markers_are_errors(src, match):
    with pytest.raises(BuildError, match=match):
        strip_solutions(src, "nb")


def _course(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "tfmcourse").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell(SOLVED),
        nbformat.v4.new_code_cell("check_f(f)"),
        nbformat.v4.new_code_cell("print('only in the solution')", metadata={"tags": ["solution-only"]}),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].execution_count = 3
    nbtools.write(nb, tmp_path / "solutions" / "01_x.ipynb")
    return tmp_path


def test_build_generates_clean_exercise_with_header(tmp_path):
    root = _course(tmp_path)
    assert build(root, out=lambda *_: None) == 0
    ex = nbtools.read(root / "exercises" / "01_x.ipynb")
    assert ex.cells[0].source == "# Title", "a learner opens the exercise on its title, not an authors' note"
    assert "NotImplementedError" in ex.cells[1].source and "2 * x" not in ex.cells[1].source
    assert ex.cells[2].source == "check_f(f)"
    last = ex.cells[-1].source
    assert "**Next:** [02 · Bahdanau attention](../notebooks/02_bahdanau_attention.ipynb)" in last
    assert "generated from `solutions/01_x.ipynb`" in last
    assert all("only in the solution" not in c.source for c in ex.cells), "solution-only cells are dropped"
    assert all(
        c.get("outputs", []) == [] and c.get("execution_count") is None
        for c in ex.cells
        if c.cell_type == "code"
    )
    assert [p.status for p in plan(root)] == ["up to date"]


def test_check_reports_stale_and_missing(tmp_path, capsys):
    root = _course(tmp_path)
    assert build(root, check=True) == 1
    assert "exercises/01_x.ipynb: new" in capsys.readouterr().out
    build(root, out=lambda *_: None)
    assert build(root, check=True) == 0
    sol = nbtools.read(root / "solutions" / "01_x.ipynb")
    sol.cells[0].source = "# New title"
    nbtools.write(sol, root / "solutions" / "01_x.ipynb")
    assert build(root, check=True) == 1
    assert "stale" in capsys.readouterr().out
    shutil.copy(root / "exercises" / "01_x.ipynb", root / "exercises" / "99_orphan.ipynb")
    build(root, out=lambda *_: None)
    assert build(root, check=True) == 1
    assert "99_orphan.ipynb: has no solution notebook" in capsys.readouterr().out


def test_learner_edits_are_never_silently_overwritten(tmp_path, capsys):
    root = _course(tmp_path)
    build(root, out=lambda *_: None)
    target = root / "exercises" / "01_x.ipynb"
    # running the notebook (outputs only) is not an edit: a rebuild may refresh it
    ran = nbtools.read(target)
    ran.cells[2].outputs = [nbformat.v4.new_output("stream", text="✓")]
    nbtools.write(ran, target)
    assert [p.status for p in plan(root)] == ["stale"]
    # a learner's code is an edit
    mine = nbtools.read(target)
    mine.cells[1].source = "def f(x):\n    return x + x"
    nbtools.write(mine, target)
    sol = nbtools.read(root / "solutions" / "01_x.ipynb")
    sol.cells[0].source = "# Changed"
    nbtools.write(sol, root / "solutions" / "01_x.ipynb")
    assert build(root) == 1
    assert "NOT overwritten" in capsys.readouterr().out
    assert nbtools.read(target).cells[1].source == "def f(x):\n    return x + x"
    assert build(root, force=True) == 0
    assert "saved as exercises/01_x.bak.ipynb" in capsys.readouterr().out
    assert (
        nbtools.read(root / "exercises" / "01_x.bak.ipynb").cells[1].source == "def f(x):\n    return x + x"
    )
    assert nbtools.read(target).cells[0].source == "# Changed"


def test_repository_exercises_are_up_to_date(root):
    stale = [f"{p.target.name}: {p.status}" for p in plan(root) if p.status != "up to date"]
    assert not stale, f"run `tfmcourse build`: {stale}"


def test_cli_build_check_exit_status(root):
    proc = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "build", "--check"], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def test_every_exercise_has_a_solution_and_exercise_notebook(root):
    from tfmcourse.checks import EXERCISES

    sources = {p.name: p.read_text(encoding="utf-8") for p in (root / "solutions").glob("*.ipynb")}
    for name, ex in EXERCISES.items():
        homes = [n for n, text in sources.items() if f"check_{name}({name})" in text]
        assert homes, f"no solution notebook has a check cell for {name}"
        assert all(n.startswith(f"{ex.lesson:02d}_") for n in homes), (
            f"{name} checked outside lesson {ex.lesson}"
        )
        assert all((root / "exercises" / n).exists() for n in homes)


def test_every_exercise_notebook_ends_with_a_link_to_the_next_lesson(root):
    from tfmcourse.course import LESSONS, next_lesson

    numbers = {item.number for item in LESSONS}
    for path in sorted((root / "exercises").glob("*.ipynb")):
        lesson = int(path.name[:2])
        assert lesson in numbers, f"{path.name} is not in the course outline"
        last = nbtools.read(path).cells[-1].source
        nxt = next_lesson(lesson)
        if nxt is not None:
            assert f"(../notebooks/{nxt.notebook})" in last, f"{path.name} does not link to {nxt.notebook}"
        assert f"(../notebooks/{path.name})" in last, f"{path.name} does not link back to its lesson"


def test_footer_of_the_last_lesson_says_the_course_is_over():
    from tfmcourse.build import footer
    from tfmcourse.course import LESSONS

    assert "end of the course" in footer(f"solutions/{LESSONS[-1].notebook}")
    assert "**Next:**" not in footer("solutions/notes.ipynb")
