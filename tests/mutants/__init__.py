"""Catalogues of implementations that test the exercise checks.

For every exercise, ``lessonNN.py`` here holds implementations written
independently of ``tfmcourse`` (never by calling the reference):

- ``@correct("name")``: a correct implementation written differently (einsum
  instead of matmul, loops, float64 inside, …): the check must pass it;
- ``@wrong("name", "phrase")``: a common mistake: the check must raise
  ``CheckFailed`` whose message contains ``phrase`` (case-insensitive), i.e.
  it names the mistake.

``tests/test_mutants.py`` walks these; ``benchmarks/mutation_score.py``
prints the score per exercise.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    exercise: str
    impl: Callable
    phrase: str | None  # None for a correct implementation
    label: str

    @property
    def correct(self) -> bool:
        return self.phrase is None


CATALOGUE: list[Mutant] = []


def correct(exercise: str):
    def register(impl):
        CATALOGUE.append(Mutant(exercise, impl, None, impl.__name__))
        return impl

    return register


def wrong(exercise: str, phrase: str):
    def register(impl):
        CATALOGUE.append(Mutant(exercise, impl, phrase, impl.__name__))
        return impl

    return register


def load_all() -> list[Mutant]:
    """Import every lesson catalogue in this folder and return the whole catalogue."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lesson"):
            importlib.import_module(f"{__name__}.{info.name}")
    return CATALOGUE
