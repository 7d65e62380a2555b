"""Every correct implementation in tests/mutants passes its check at every one of 200 seeds.

The secure grader runs the checks on hidden seeds, so a correct answer that fails
at one seed in a hundred would be marked wrong for some learners. This is the
proof of the tolerance policy written in ``tfmcourse/checks/_core.py``: however a
correct implementation is written, it is accepted at every seed.

The checks of whole modules (attention, layers, decoding) cost tens of
milliseconds a run; their 200 seeds are marked ``slow`` (part of the full run),
and the quick run samples every tenth of those seeds. A new exercise needs
correct variants in ``tests/mutants`` (the last test here fails otherwise);
if its check builds modules, add its name to ``HEAVY``.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from tests.mutants import load_all
from tfmcourse.checks import EXERCISES, CheckFailed

SEEDS = range(200)
# checks that build modules or decode: 200 seeds only in the full (slow) run
HEAVY = {
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "EncoderLayer",
    "DecoderLayer",
    "greedy_decode",
}
CORRECT = [m for m in load_all() if m.correct]


def _rejections(mutant, seeds) -> list[str]:
    check = EXERCISES[mutant.exercise].check
    failed = []
    for seed in seeds:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                check(mutant.impl, seed=seed)
        except CheckFailed as exc:
            failed.append(f"seed {seed}: {exc}")
    return failed


def _id(m):
    return f"{m.exercise}-{m.label}"


def _params(heavy: bool):
    return [
        pytest.param(m, marks=[pytest.mark.slow] if heavy else [], id=_id(m))
        for m in CORRECT
        if (m.exercise in HEAVY) == heavy
    ]


@pytest.mark.parametrize("mutant", _params(heavy=False))
def test_correct_variant_passes_at_every_seed(mutant):
    failed = _rejections(mutant, SEEDS)
    assert not failed, (
        f"{len(failed)} of {len(SEEDS)} seeds rejected a correct implementation:\n" + "\n".join(failed[:3])
    )


@pytest.mark.parametrize("mutant", _params(heavy=True))
def test_correct_module_variant_passes_at_every_seed(mutant):
    failed = _rejections(mutant, SEEDS)
    assert not failed, (
        f"{len(failed)} of {len(SEEDS)} seeds rejected a correct implementation:\n" + "\n".join(failed[:3])
    )


@pytest.mark.parametrize("mutant", [m for m in CORRECT if m.exercise in HEAVY], ids=_id)
def test_correct_module_variant_passes_at_sampled_seeds(mutant):
    failed = _rejections(mutant, SEEDS[::10])
    assert not failed, "a correct implementation was rejected:\n" + "\n".join(failed[:3])


def test_every_exercise_has_its_seeds_tested():
    assert {m.exercise for m in CORRECT} == set(EXERCISES)
