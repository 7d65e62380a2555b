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
