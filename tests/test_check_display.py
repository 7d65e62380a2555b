"""How a check's outcome looks in a notebook: a short ✗ block, one not-attempted line, learner frames only."""

from __future__ import annotations

import json

import pytest
import torch

from tfmcourse.checks import (
    CheckFailed,
    ExerciseNotAttempted,
    check_causal_mask,
    check_scaled_dot_product_attention,
)
from tfmcourse.checks._display import PACKAGE, exercise_of, is_learner_frame


def sdpa_without_scale(q, k, v, attn_mask=None):
    scores = q @ k.transpose(-2, -1)
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v, weights


def sdpa_that_crashes(q, k, v, attn_mask=None):
    return learner_helper(q, v)


def learner_helper(q, v):
    return q @ v.mT.mT.mT  # wrong shapes: matmul raises


def failure_of(check, impl) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        check(impl)
    return info.value


def test_a_failed_check_is_a_short_block_naming_the_exercise_the_mistake_and_the_hint():
    failure = failure_of(check_scaled_dot_product_attention, sdpa_without_scale)
    lines = failure.lines(color=False)
    assert lines[0] == "✗ Exercise 6.3 · scaled_dot_product_attention"
    text = "\n".join(lines)
    assert "not scaled" in text and "sqrt(d_k)" in text
    assert 'hint("scaled_dot_product_attention")' in text
    assert "tfmcourse/checks" not in text and "Traceback" not in text
    assert all(len(line) <= 110 for line in lines), "long lines are wrapped at word boundaries"
    assert failure._render_traceback_()[0].startswith("\x1b[1m\x1b[31m✗"), "the ✗ line is red in a notebook"


def test_a_crash_in_the_learners_code_shows_only_the_learners_frames():
    failure = failure_of(check_scaled_dot_product_attention, sdpa_that_crashes)
    text = "\n".join(failure.lines(color=False))
    assert "calling it raised RuntimeError" in text
    assert "in sdpa_that_crashes" in text and "in learner_helper" in text
    assert "return q @ v.mT.mT.mT" in text, "the learner's line that raised is shown"
    assert str(PACKAGE) not in text and "torch/" not in text


def test_not_attempted_is_one_line():
    def stub(T):
        raise NotImplementedError("Exercise 6.1: return the mask (about 1 line)")

    failure = failure_of(check_causal_mask, stub)
    assert isinstance(failure, ExerciseNotAttempted)
    lines = failure.lines(color=False)
    assert len(lines) == 1 and lines[0].startswith("· Exercise 6.1 · causal_mask: not attempted yet")


def test_a_pass_prints_one_line_starting_with_a_check_mark(capsys):
    check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1))
    out = capsys.readouterr().out
    assert out.startswith("✓ causal_mask: correct") and out.count("\n") == 1


def test_the_exercise_is_found_from_the_traceback_even_when_the_message_names_a_class():
    failure = failure_of(check_causal_mask, lambda T: torch.zeros(T, T, dtype=torch.bool))
    assert exercise_of(failure) == "causal_mask"
    assert exercise_of(CheckFailed("something else")) is None
    assert CheckFailed("something else").lines(color=False)[0] == "✗ exercise check"


def test_learner_frames_are_the_notebooks_and_scripts_not_the_course_or_libraries():
    assert is_learner_frame("/tmp/ipykernel_123/4567.py")
    assert is_learner_frame("<ipython-input-3-abc>")
    assert not is_learner_frame(str(PACKAGE / "checks" / "_core.py"))
    assert not is_learner_frame(torch.__file__)
    assert not is_learner_frame(json.__file__), "the standard library is not the learner's"


@pytest.mark.slow
def test_in_a_jupyter_kernel_the_outcomes_look_as_described_and_are_recorded(tmp_path, monkeypatch):
    """A real kernel (as JupyterLab runs it), in a learner's workspace: what each kind of outcome shows."""
    import os

    import nbformat
    from nbclient import NotebookClient

    from tfmcourse import progress
    from tfmcourse.workspace import sync

    course = tmp_path / "course"
    for d in ("notebooks", "exercises"):
        (course / d).mkdir(parents=True)
        (course / d / "06_x.ipynb").write_text("{}")
    work = sync(course).workspace
    cells = [
        "import torch\nfrom tfmcourse.checks import check_causal_mask, check_padding_mask, "
        "check_scaled_dot_product_attention",
        "def causal_mask(T):\n    raise NotImplementedError('Exercise 6.1: …')",
        "check_causal_mask(causal_mask)",
        "def padding_mask(tokens, pad_id):\n    return my_helper(tokens)\n\n"
        "def my_helper(tokens):\n    return tokens.undefined_method()",
        "check_padding_mask(padding_mask)",
        "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
        "    w = torch.softmax(q @ k.transpose(-2, -1), dim=-1)\n    return w @ v, w",
        "check_scaled_dot_product_attention(scaled_dot_product_attention)",
        "hint(6.3)",
        "check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu(1))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(PACKAGE.parent), os.environ.get("PYTHONPATH")]))
    )
    NotebookClient(
        nb, timeout=300, allow_errors=True, resources={"metadata": {"path": str(work / "exercises")}}
    ).execute()

    def error(i):
        (out,) = [o for o in nb.cells[i].outputs if o.output_type == "error"]
        return out

    not_attempted = error(2)
    assert not_attempted.ename == "ExerciseNotAttempted" and len(not_attempted.traceback) == 1
    assert "· Exercise 6.1 · causal_mask: not attempted yet" in not_attempted.traceback[0]

    crash = "\n".join(error(4).traceback)
    assert error(4).ename == "CheckFailed" and "✗ Exercise 6.2 · padding_mask" in crash
    assert "in my_helper" in crash and "tokens.undefined_method()" in crash, crash
    assert "tfmcourse" not in crash.replace("tfmcourse.checks", ""), "no frame of the course's code"

    wrong = "\n".join(error(6).traceback)
    assert "✗ Exercise 6.3 · scaled_dot_product_attention" in wrong and "not scaled" in wrong
    assert "Traceback" not in wrong and str(PACKAGE) not in wrong

    hint_text = "".join(o.get("text", "") for o in nb.cells[7].outputs)
    assert hint_text.startswith("Hint 1/3 for scaled_dot_product_attention"), (
        "hint is offered after a failure"
    )

    (ok,) = nb.cells[8].outputs
    assert ok.data["text/plain"].startswith("✓ causal_mask: correct") and "text/html" in ok.data

    done = {name: entry["status"] for name, entry in progress.load(work).items()}
    assert done == {
        "causal_mask": "passed",
        "padding_mask": "failed",
        "scaled_dot_product_attention": "failed",
    }
