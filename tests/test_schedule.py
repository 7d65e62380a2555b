"""The Noam warm-up schedule (tfmcourse.schedule)."""

import math

import pytest
import torch

from tfmcourse.schedule import noam_lr, noam_lr_mistyped, peak_lr


def test_formula_on_both_branches():
    d, w = 64, 100
    for step in (1, 10, 50, 99, 100, 101, 400, 10_000):
        want = d**-0.5 * min(step**-0.5, step * w**-1.5)
        assert noam_lr(step, d, w) == pytest.approx(want, rel=1e-12)
    assert noam_lr(37, d, w, factor=2.5) == pytest.approx(2.5 * noam_lr(37, d, w))


def test_linear_warmup_then_inverse_sqrt_decay():
    d, w = 32, 50
    assert noam_lr(20, d, w) == pytest.approx(2 * noam_lr(10, d, w))  # linear rise
    assert noam_lr(4 * w, d, w) == pytest.approx(noam_lr(w, d, w) / 2)  # 1/sqrt(step) decay


def test_paper_peak():
    values = [noam_lr(s, 512, 4000) for s in range(1, 20_001)]
    best = max(range(len(values)), key=values.__getitem__) + 1
    assert best == 4000
    assert values[best - 1] == pytest.approx(6.9877e-4, rel=1e-4)
    assert peak_lr(512, 4000) == pytest.approx(values[best - 1])


def test_step_zero_is_finite_and_works_with_lambda_lr():
    assert math.isfinite(noam_lr(0, 64, 10)) and noam_lr(0, 64, 10) == noam_lr(1, 64, 10)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: noam_lr(s, 64, 10))
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(math.isfinite(x) and x > 0 for x in lrs)
    assert max(range(30), key=lrs.__getitem__) == 10


def test_mistyped_form_has_no_warmup_and_is_tiny():
    d, w = 512, 4000
    m = [noam_lr_mistyped(s, d, w) for s in (1, 10, 100, 4000)]
    assert m == sorted(m, reverse=True)  # only decays: no warm-up
    assert math.isinf(noam_lr_mistyped(0, d, w))
    assert noam_lr(8000, d, w) / noam_lr_mistyped(8000, d, w) == pytest.approx(w**1.5)


@pytest.mark.parametrize("args", [(1, 0, 10), (1, 64, 0), (-1, 64, 10)])
def test_invalid_arguments(args):
    with pytest.raises(ValueError):
        noam_lr(*args)
