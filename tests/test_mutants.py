"""Test the tests: every check passes correct variants, fails stubs and named mistakes."""

from __future__ import annotations

import pytest

from tests.mutants import load_all
from tfmcourse.checks import EXERCISES, CheckFailed, ExerciseNotAttempted

CATALOGUE = load_all()
# Enough wrong implementations per exercise that a check which accepts
# anything, or a single fixed answer, cannot survive.
MIN_WRONG = 2


def _id(m):
    return f"{m.exercise}-{'ok' if m.correct else 'bad'}-{m.label}"


@pytest.mark.parametrize("mutant", [m for m in CATALOGUE if m.correct], ids=_id)
def test_check_accepts_correct_variant(mutant, capsys):
    EXERCISES[mutant.exercise].check(mutant.impl)
    assert capsys.readouterr().out.startswith("✓ "), "a passing check prints one line starting with ✓"


@pytest.mark.parametrize("mutant", [m for m in CATALOGUE if not m.correct], ids=_id)
def test_check_rejects_and_names_mistake(mutant):
    with pytest.raises(CheckFailed) as info:
        EXERCISES[mutant.exercise].check(mutant.impl)
    assert not isinstance(info.value, ExerciseNotAttempted)
    message = str(info.value)
    assert message.startswith(mutant.exercise), f"the message must name the exercise: {message}"
    assert mutant.phrase.lower() in message.lower(), (
        f"expected the message to name the mistake ({mutant.phrase!r}), got:\n{message}"
    )


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_stub_is_not_attempted(name):
    def stub(*args, **kwargs):
        raise NotImplementedError(f"Exercise: {name}")

    with pytest.raises(ExerciseNotAttempted):
        EXERCISES[name].check(stub)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_exercise_has_a_catalogue(name):
    mine = [m for m in CATALOGUE if m.exercise == name]
    assert any(m.correct for m in mine), f"{name}: no alternative correct implementation in tests/mutants"
    assert sum(not m.correct for m in mine) >= MIN_WRONG, (
        f"{name}: fewer than {MIN_WRONG} wrong implementations"
    )


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_checks_are_deterministic_and_accept_other_seeds(name, capsys):
    """The check of the reference passes for the default and for other seeds (secure grading)."""
    reference = EXERCISES[name].reference_impl()
    for seed in (0, 1, 12345):
        EXERCISES[name].check(reference, seed=seed)
