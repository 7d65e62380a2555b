"""Test the tests: every check passes correct variants, fails stubs and named mistakes."""

from __future__ import annotations

import pytest
import torch

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
    with pytest.raises(CheckFailed, match=mutant.exercise) as info:
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

    with pytest.raises(ExerciseNotAttempted, match="not attempted"):
        EXERCISES[name].check(stub)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_exercise_has_a_catalogue(name):
    mine = [m for m in CATALOGUE if m.exercise == name]
    assert any(m.correct for m in mine), f"{name}: no alternative correct implementation in tests/mutants"
    assert sum(not m.correct for m in mine) >= MIN_WRONG, (
        f"{name}: fewer than {MIN_WRONG} wrong implementations"
    )


def _outcome(check, impl, seed: int, global_seed: int, capsys) -> str:
    """What a learner sees from one run of a check: its ✓ line or its failure message."""
    torch.manual_seed(global_seed)  # a check must not depend on the global RNG
    try:
        check(impl, seed=seed)
    except CheckFailed as exc:
        return f"{type(exc).__name__}: {exc}"
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_checks_are_deterministic_and_accept_other_seeds(name, capsys):
    """Two runs with one seed say exactly the same thing (whatever the global RNG), for the reference
    and for wrong implementations; the reference passes for other seeds too (secure grading)."""
    check, reference = EXERCISES[name].check, EXERCISES[name].reference_impl()
    wrong = [m.impl for m in CATALOGUE if m.exercise == name and not m.correct][:2]
    for impl in [reference, *wrong]:
        first = _outcome(check, impl, 12345, global_seed=1, capsys=capsys)
        assert first, "a check either prints its ✓ line or raises"
        assert _outcome(check, impl, 12345, global_seed=2, capsys=capsys) == first
    for seed in (0, 1, 12345):
        assert _outcome(check, reference, seed, global_seed=seed, capsys=capsys).startswith("✓ ")
