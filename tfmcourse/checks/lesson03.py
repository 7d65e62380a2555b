"""Checks for lesson 03: ``batch_norm`` and ``layer_norm``.

Inputs have a non-zero mean, per-channel spreads that differ, a large eps
(0.1) and distinct sizes, so that every registered mistake (unbiased
variance, eps outside the square root, the wrong axis, gamma/beta missing or
swapped) gives an output far from the right one and from the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tfmcourse import norms
from tfmcourse.checks._core import (
    NORM_ATOL,
    assert_close,
    call,
    exercise,
    expect_tensor,
    generator,
    mistake,
    passed,
    randn,
    require,
)

# ---------------------------------------------------------------- known mistakes


def _normalise(x, dims, eps, *, unbiased=False, eps_outside=False):
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    if eps_outside:
        return (x - mean) / (var.sqrt() + eps)
    return (x - mean) / torch.sqrt(var + eps)


def _bn_dims(x):
    return tuple(range(x.dim() - 1))


@mistake(
    "batch_norm",
    "the variance is the unbiased one (divides by N-1): batch norm uses the biased "
    "variance, dividing by N — x.var(..., unbiased=False) or ((x - mean)**2).mean(...).",
)
def _bn_unbiased(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps, unbiased=True) * gamma + beta


@mistake(
    "batch_norm",
    "two mistakes at once: the variance is the unbiased one (divides by N-1; batch norm divides by N) "
    "*and* eps is outside the square root (divide by sqrt(var + eps), not sqrt(var) + eps).",
)
def _bn_unbiased_eps_outside(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps, unbiased=True, eps_outside=True) * gamma + beta


@mistake("batch_norm", "eps is outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps.")
def _bn_eps_outside(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps, eps_outside=True) * gamma + beta


@mistake(
    "batch_norm",
    "the statistics are taken over the features of each sample (the last axis) — that "
    "is layer norm. Batch norm takes, for each channel, the mean and variance over every axis but "
    "the last (the batch, and the time axis of a (B, T, C) input).",
)
def _bn_over_features(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps) * gamma + beta


@mistake(
    "batch_norm",
    "the statistics are taken over the batch axis only (dim=0): for a (B, T, C) input "
    "batch norm pools the batch *and* the time axis — every axis but the last.",
)
def _bn_batch_axis_only(x, gamma, beta, eps=1e-5):
    return _normalise(x, (0,), eps) * gamma + beta


@mistake(
    "batch_norm",
    "the statistics are taken over every axis, channels included (one mean for the whole "
    "tensor): batch norm keeps one mean and variance per channel (the last axis).",
)
def _bn_global(x, gamma, beta, eps=1e-5):
    return _normalise(x, tuple(range(x.dim())), eps) * gamma + beta


@mistake(
    "batch_norm",
    "gamma and beta are swapped: the output is gamma * x_hat + beta (gamma scales, beta shifts).",
)
def _bn_swapped(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps) * beta + gamma


@mistake(
    "batch_norm",
    "gamma and beta are missing: after normalising, scale by gamma and shift by beta (gamma * x_hat + beta).",
)
def _bn_no_affine(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps)


@mistake("batch_norm", "beta is missing: after scaling by gamma, shift by beta (gamma * x_hat + beta).")
def _bn_no_beta(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps) * gamma


@mistake("batch_norm", "gamma is missing: scale x_hat by gamma before adding beta (gamma * x_hat + beta).")
def _bn_no_gamma(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), eps) + beta


@mistake("batch_norm", "the eps argument is ignored (a fixed 1e-5 is used): use the eps you are given.")
def _bn_fixed_eps(x, gamma, beta, eps=1e-5):
    return _normalise(x, _bn_dims(x), 1e-5) * gamma + beta


@mistake(
    "layer_norm",
    "the variance is the unbiased one (divides by D-1): layer norm, like "
    "nn.LayerNorm, uses the biased variance — x.var(-1, unbiased=False).",
)
def _ln_unbiased(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps, unbiased=True) * gamma + beta


@mistake(
    "layer_norm",
    "two mistakes at once: the variance is the unbiased one (divides by D-1; layer norm, like "
    "nn.LayerNorm, divides by D) *and* eps is outside the square root (sqrt(var + eps), not "
    "sqrt(var) + eps).",
)
def _ln_unbiased_eps_outside(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps, unbiased=True, eps_outside=True) * gamma + beta


@mistake("layer_norm", "eps is outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps.")
def _ln_eps_outside(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps, eps_outside=True) * gamma + beta


@mistake(
    "layer_norm",
    "the statistics are taken over the batch axis (dim=0) — that is batch norm. Layer "
    "norm normalises each token over its own features: mean and variance over the last axis (dim=-1).",
)
def _ln_over_batch(x, gamma, beta, eps=1e-5):
    return _normalise(x, (0,), eps) * gamma + beta


@mistake(
    "layer_norm",
    "the statistics are taken over every axis but the last (batch norm's axes). Layer "
    "norm uses the last axis only: mean(dim=-1, keepdim=True).",
)
def _ln_bn_axes(x, gamma, beta, eps=1e-5):
    return _normalise(x, tuple(range(x.dim() - 1)), eps) * gamma + beta


@mistake(
    "layer_norm",
    "the statistics are taken over the second-to-last axis (the sequence/time axis): "
    "layer norm uses the last (feature) axis, dim=-1.",
)
def _ln_over_time(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-2,), eps) * gamma + beta


@mistake(
    "layer_norm",
    "the statistics are taken over all axes of each sample (the whole sequence), not "
    "per token: layer norm in a Transformer uses the last axis only (dim=-1).",
)
def _ln_whole_sample(x, gamma, beta, eps=1e-5):
    return _normalise(x, tuple(range(1, x.dim())), eps) * gamma + beta


@mistake(
    "layer_norm",
    "gamma and beta are swapped: the output is gamma * x_hat + beta (gamma scales, beta shifts).",
)
def _ln_swapped(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps) * beta + gamma


@mistake(
    "layer_norm",
    "gamma and beta are missing: after normalising, scale by gamma and shift by beta (gamma * x_hat + beta).",
)
def _ln_no_affine(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps)


@mistake("layer_norm", "beta is missing: after scaling by gamma, shift by beta (gamma * x_hat + beta).")
def _ln_no_beta(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps) * gamma


@mistake("layer_norm", "gamma is missing: scale x_hat by gamma before adding beta (gamma * x_hat + beta).")
def _ln_no_gamma(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), eps) + beta


@mistake("layer_norm", "the eps argument is ignored (a fixed 1e-5 is used): use the eps you are given.")
def _ln_fixed_eps(x, gamma, beta, eps=1e-5):
    return _normalise(x, (-1,), 1e-5) * gamma + beta


# ---------------------------------------------------------------- inputs


def _affine(C: int, g: torch.Generator):
    """gamma around 1.5 and beta around -0.7, clearly different from each other and from 1 and 0."""
    gamma = 1.5 + 0.5 * torch.rand(C, generator=g)
    beta = -0.7 + 0.4 * torch.rand(C, generator=g)
    return gamma, beta


def _data(shape, g: torch.Generator):
    """Non-zero mean; a spread that varies along the last axis and is small enough for eps=0.1 to matter."""
    C = shape[-1]
    spread = 0.3 + 0.5 * torch.rand(C, generator=g)  # (C,)
    return randn(*shape, g=g) * spread + 2.0 + randn(C, g=g)


def _hand_case():
    """Two samples, one channel: mean 2, biased variance 1; with eps=3, sqrt(1 + 3) = 2 so the answer is ±0.5."""
    return torch.tensor([[1.0], [3.0]]), torch.ones(1), torch.zeros(1), torch.tensor([[-0.5], [0.5]])


def _run(name, impl, x, gamma, beta, eps, label):
    before = [t.clone() for t in (x, gamma, beta)]
    got = call(name, impl, x, gamma, beta, eps=eps)
    for t, t0 in zip((x, gamma, beta), before):
        require(
            torch.equal(t, t0), name, f"it changed one of its inputs in place {label}; compute a new tensor"
        )
    axes = {2: "B,C", 3: "B,T,C", 4: "B,H,W,C"}.get(x.dim()) if name == "batch_norm" else None
    expect_tensor(name, got, tuple(x.shape), what=f"output {label}", axes=axes)
    return got


# ---------------------------------------------------------------- checks


@exercise(
    "batch_norm",
    lesson=3,
    points=2,
    title="Batch norm (training-mode statistics)",
    reference="tfmcourse.norms:batch_norm",
)
def check_batch_norm(batch_norm, *, seed: int = 0) -> None:
    name = "batch_norm"
    g = generator(seed)
    # 1. the most discriminating case first: a (B, T, C) sequence batch, eps 0.1
    B, T, C = 3, 5, 7
    cases = [
        ((B, T, C), 0.1, "for a (B, T, C) = (3, 5, 7) input with eps=0.1"),
        ((4, 6), 0.1, "for a (B, C) = (4, 6) input with eps=0.1"),
        ((2, 3, 5, 6), 0.1, "for a 4-D (2, 3, 5, 6) input with eps=0.1"),
        ((9, 5), 1e-5, "for a (B, C) = (9, 5) input with eps=1e-5"),
    ]
    for i, (shape, eps, label) in enumerate(cases):
        x = _data(shape, g)
        gamma, beta = _affine(shape[-1], g)
        got = _run(name, batch_norm, x, gamma, beta, eps, label)
        assert_close(
            name,
            got,
            norms.batch_norm(x, gamma, beta, eps),
            case=label,
            mistake_args=(x, gamma, beta),
            mistake_kwargs={"eps": eps},
            atol=NORM_ATOL,
        )
        # nn.BatchNorm1d's training-mode math: channels on axis 1, statistics over the rest
        flat = x.reshape(-1, shape[-1])  # (N, C)
        builtin = F.batch_norm(flat, None, None, gamma, beta, training=True, eps=eps).reshape(shape)
        assert_close(
            name, got, builtin, what="output (vs nn.BatchNorm1d in training mode)", case=label, atol=NORM_ATOL
        )
        if i == 0:
            # 2. a hand-checkable case once the shapes are known to work
            hx, hg, hb, want = _hand_case()
            hgot = _run(name, batch_norm, hx, hg, hb, 3.0, "for x = [[1.], [3.]] with eps=3")
            assert_close(
                name,
                hgot,
                want,
                case="for x = [[1.], [3.]], gamma 1, beta 0, eps 3 "
                "(mean 2, biased variance 1, sqrt(1 + 3) = 2)",
                mistake_args=(hx, hg, hb),
                mistake_kwargs={"eps": 3.0},
            )
    # 3. invariants: each channel of the output has mean beta; one sample depends on the others
    x = _data((6, 5, 7), g)
    gamma, beta = _affine(7, g)
    got = _run(name, batch_norm, x, gamma, beta, 1e-5, "for a (6, 5, 7) input")
    require(
        torch.allclose(got.mean(dim=(0, 1)), beta, atol=1e-4),
        name,
        "each channel's output should average to beta over the batch and time axes",
    )
    passed(
        name,
        "per-channel statistics over every axis but the last, biased variance, eps inside the "
        "square root; matches nn.BatchNorm1d's training-mode math for 2-D, 3-D and 4-D inputs",
    )


@exercise("layer_norm", lesson=3, points=2, title="Layer norm", reference="tfmcourse.norms:layer_norm")
def check_layer_norm(layer_norm, *, seed: int = 0) -> None:
    name = "layer_norm"
    g = generator(seed)
    cases = [
        ((3, 5, 7), 0.1, "for a (B, T, D) = (3, 5, 7) input with eps=0.1"),
        ((4, 9), 0.1, "for an (N, D) = (4, 9) input with eps=0.1"),
        ((2, 3, 5, 6), 0.1, "for a 4-D (2, 3, 5, 6) input with eps=0.1"),
        ((2, 5, 24), 1e-5, "for a (B, T, D) = (2, 5, 24) input with eps=1e-5"),
        ((11,), 0.1, "for a single 1-D vector of size 11 with eps=0.1"),
    ]
    for i, (shape, eps, label) in enumerate(cases):
        x = _data(shape, g) + randn(*shape[:-1], 1, g=g)  # per-token offsets too
        gamma, beta = _affine(shape[-1], g)
        got = _run(name, layer_norm, x, gamma, beta, eps, label)
        assert_close(
            name,
            got,
            norms.layer_norm(x, gamma, beta, eps),
            case=label,
            mistake_args=(x, gamma, beta),
            mistake_kwargs={"eps": eps},
            atol=NORM_ATOL,
        )
        builtin = F.layer_norm(x, (shape[-1],), gamma, beta, eps)
        assert_close(
            name, got, builtin, what="output (vs torch.nn.functional.layer_norm)", case=label, atol=NORM_ATOL
        )
        if i == 0:
            hx, hg, hb, want = _hand_case()
            hx, want = hx.T, want.T  # one token with features [1, 3]: mean 2, biased variance 1
            hgot = _run(
                name,
                layer_norm,
                hx,
                hg.expand(2).clone(),
                hb.expand(2).clone(),
                3.0,
                "for x = [[1., 3.]] with eps=3",
            )
            assert_close(
                name,
                hgot,
                want,
                case="for x = [[1., 3.]], gamma 1, beta 0, eps 3 "
                "(mean 2, biased variance 1, sqrt(1 + 3) = 2)",
                mistake_args=(hx, hg.expand(2).clone(), hb.expand(2).clone()),
                mistake_kwargs={"eps": 3.0},
            )
    # invariants: a token's output depends on that token only (batch size 1 works, other samples don't matter)
    x = _data((4, 5, 8), g)
    gamma, beta = _affine(8, g)
    full = _run(name, layer_norm, x, gamma, beta, 1e-5, "for a (4, 5, 8) input")
    alone = _run(name, layer_norm, x[2:3, 1:2].clone(), gamma, beta, 1e-5, "for a single token (1, 1, 8)")
    require(
        torch.allclose(alone[0, 0], full[2, 1], rtol=1e-4, atol=1e-5),
        name,
        "a token's output changed when it was normalised alone: layer norm must use that token's "
        "own features only (the last axis), never the batch or the other positions",
    )
    passed(
        name,
        "per-token statistics over the last axis, biased variance, eps inside the square root; "
        "matches torch.nn.functional.layer_norm for 1-D to 4-D inputs",
    )
