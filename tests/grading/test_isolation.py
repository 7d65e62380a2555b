"""`--isolation bwrap`: learner code without network, without a view of the instructor's files, the
course or other submissions, writing only to its own folder; honest submissions grade the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.grading.builders import ROOT, by_name, correct_impls, impl_source, write_notebook
from tfmcourse.grading.secure import isolation

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(isolation.bwrap_problem() is not None, reason=f"{isolation.bwrap_problem()}"),
]


def attempt(action: str) -> str:
    """A causal_mask whose code tries ``action`` first and reports, in its exception, what happened."""
    return textwrap.dedent(f"""
        import os
        import socket

        def causal_mask(T):
            try:
                {action}
                outcome = "allowed"
            except OSError as exc:
                outcome = "refused " + type(exc).__name__
            raise RuntimeError("outcome:" + outcome)
    """)


def grade_isolated(path, **kw):
    from tfmcourse.grading.secure.grade import Settings, grade_path

    settings = Settings(seed=4242, isolation="bwrap", hide=(str(path.parent.parent),), **kw)
    return by_name(grade_path(str(path), str(path), settings))


@pytest.mark.parametrize(
    "action",
    [
        "socket.create_connection(('127.0.0.1', 9), timeout=2)",
        f"open({str(ROOT / 'tfmcourse' / 'masks.py')!r}).read()",
        f"open({os.path.join(os.path.expanduser('~'), '.tfmcourse-escape')!r}, 'w').write('x')",
        "open('/var/tmp/tfmcourse-escape', 'w').write('x')",
        "open(OTHER).read()",
    ],
    ids=["network", "course-source", "home", "outside-its-folder", "other-student"],
)
def test_learner_code_is_refused_outside_its_sandbox(tmp_path, action):
    other = tmp_path / "class" / "bob" / "06_b.ipynb"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    code = attempt(action).replace("OTHER", repr(str(other)))
    path = write_notebook(tmp_path / "class" / "ann" / "06_a.ipynb", {"causal_mask": code})
    e = grade_isolated(path)["causal_mask"]
    assert "outcome:refused" in e.message, e.message


def test_honest_submissions_grade_the_same_isolated(tmp_path):
    codes = {n: impl_source(correct_impls(n)[0].impl, n) for n in ("causal_mask", "padding_mask")}
    path = write_notebook(tmp_path / "class" / "ann" / "06_a.ipynb", codes)
    isolated = grade_isolated(path)
    assert {n: e.status for n, e in isolated.items()} == {
        "causal_mask": "passed",
        "padding_mask": "passed",
        "scaled_dot_product_attention": "not attempted",
    }


def test_bwrap_refuses_to_grade_when_it_cannot_isolate(tmp_path):
    nb = write_notebook(tmp_path / "06_a.ipynb", {"causal_mask": attempt("pass")})
    code = (
        "import sys\nfrom tfmcourse import cli\nfrom tfmcourse.grading.secure import isolation\n"
        "isolation.bwrap_problem = lambda: 'bwrap is not installed'\n"
        f"sys.exit(cli.main(['grade', '--secure', {str(nb)!r}, '--isolation', 'bwrap']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "cannot isolate learner code: bwrap is not installed" in proc.stderr


def test_an_interpreter_reached_through_a_link_inside_a_hidden_folder_starts(tmp_path, monkeypatch):
    # A virtual environment that is a link (as in a worktree or a copied course), started from
    # inside a folder the sandbox empties: the link must still lead to the installation.
    from tfmcourse.grading.secure.sandbox import Sandbox

    hidden = tmp_path / "course"
    hidden.mkdir()
    (hidden / "venv").symlink_to(os.path.realpath(sys.prefix), target_is_directory=True)
    rel = os.path.relpath(sys.executable, sys.prefix)
    monkeypatch.setattr(sys, "executable", str(hidden / "venv" / rel))
    monkeypatch.chdir(hidden)
    sandbox = Sandbox(isolation="bwrap", hide=(str(hidden),))
    try:
        sandbox.start()
        assert sandbox.alive() and sandbox.zygote > 0
    finally:
        sandbox.close()


def test_a_sandbox_that_cannot_start_says_what_failed(monkeypatch):
    from tfmcourse.grading.secure.sandbox import Sandbox

    monkeypatch.setattr(isolation, "bwrap_prefix", lambda **kw: ["bwrap", "--no-such-option"])
    sandbox = Sandbox(isolation="bwrap")
    try:
        with pytest.raises(RuntimeError, match="no-such-option"):
            sandbox.start()
    finally:
        sandbox.close()


def test_auto_falls_back_and_says_so_when_the_interpreter_cannot_start_inside(monkeypatch):
    monkeypatch.setattr(isolation, "interpreter_problem", lambda hide: "it could not start: reason")
    mode, note = isolation.resolve("auto")
    assert mode == "none" and "NOT isolated" in note and "reason" in note
    with pytest.raises(isolation.IsolationUnavailable, match="reason"):
        isolation.resolve("bwrap")


def test_auto_isolates_the_interpreter_that_grades(tmp_path):
    assert isolation.interpreter_problem((str(tmp_path),)) is None
    assert isolation.resolve("auto", (str(tmp_path),))[0] == "bwrap"


def test_the_probe_loads_every_file_the_worker_loads_by_path(tmp_path, monkeypatch):
    from tfmcourse.grading.secure import worker

    folder = tmp_path / "secure"
    shutil.copytree(os.path.dirname(worker.__file__), folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(worker, "__file__", str(folder / "worker.py"))
    assert isolation.interpreter_problem(()) is None
    (folder / "rebuild.py").unlink()  # a neighbour the bubblewrap view would not show
    problem = isolation.interpreter_problem(())
    assert problem is not None and "No module named 'rebuild'" in problem, problem
