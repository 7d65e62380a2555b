"""`--isolation bwrap`: learner code without network, without a view of the instructor's files, the
course or other submissions, writing only to its own folder; honest submissions grade the same."""

from __future__ import annotations

import os
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
