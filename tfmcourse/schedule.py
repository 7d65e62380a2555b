"""The warm-up ("Noam") learning-rate schedule of Vaswani et al. (2017), lesson 09.

    lr(step) = factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)

It rises linearly for ``warmup`` steps, peaks at ``step == warmup`` with
``factor · (d_model · warmup)^-0.5`` and then decays like ``1/sqrt(step)``.

>>> sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: noam_lr(s, 64, 200))

(with the optimiser's base ``lr=1.0``, so the multiplier *is* the rate).
"""

from __future__ import annotations

import math


def _validate(d_model: int, warmup_steps: int) -> None:
    if d_model <= 0:
        raise ValueError(f"d_model must be positive, got {d_model}")
    if warmup_steps <= 0:
        raise ValueError(f"warmup_steps must be positive, got {warmup_steps}")


def noam_lr(step: int, d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """The learning rate of the warm-up schedule at ``step``.

    ``step`` 0 is treated as step 1 (as in the Annotated Transformer), so the
    value is finite and positive when ``LambdaLR`` evaluates it at
    construction; the first optimisation step then uses a small, non-zero rate.

    Shape:
        scalars in, a Python float out.
    """
    _validate(d_model, warmup_steps)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    step = max(step, 1)
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def noam_lr_mistyped(step: int, d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """The formula with its comma lost, as it is often copied: ``d_model^-0.5 · min(step^-0.5 · warmup^-1.5)``.

    With the comma lost, ``min`` has a single argument and the expression is
    ``d_model^-0.5 · step^-0.5 · warmup^-1.5``: no warm-up at all (it is
    largest at step 1 and only decays), infinite at step 0, and ``warmup^1.5``
    (about 253,000 for 4000 steps) times smaller than the real schedule after the
    peak. Provided so lesson 09 can show what it would do; never train with it.
    """
    _validate(d_model, warmup_steps)
    if step <= 0:
        return math.inf
    return factor * d_model**-0.5 * step**-0.5 * warmup_steps**-1.5


def peak_lr(d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """The largest rate of the schedule, reached at ``step == warmup_steps``."""
    _validate(d_model, warmup_steps)
    return factor * (d_model * warmup_steps) ** -0.5
