"""Exercise checks: ``check_<name>(impl)`` for every graded exercise, and the registry.

>>> from tfmcourse.checks import check_causal_mask
>>> check_causal_mask(causal_mask)          # prints "✓ causal_mask: correct …" or raises CheckFailed

``EXERCISES`` maps each exercise name to its lesson, points and check
function, so the grader and the tests can walk every exercise.
"""

# One module per lesson; importing registers its checks and known mistakes.
from tfmcourse.checks import (  # noqa: F401
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
    lesson09,
    lesson10,
    lesson11,
)
from tfmcourse.checks._core import (
    EXERCISES,
    MISTAKES,
    CheckFailed,
    Exercise,
    ExerciseNotAttempted,
)
from tfmcourse.checks.hints import HINTS, hint

globals().update({f"check_{e.name}": e.check for e in EXERCISES.values()})

__all__ = ["EXERCISES", "HINTS", "MISTAKES", "CheckFailed", "Exercise", "ExerciseNotAttempted", "hint"] + [
    f"check_{name}" for name in EXERCISES
]
