"""Checks for lesson 04: ``residual_sublayer``.

The check builds the sub-layer (``nn.Sequential(nn.Linear, nn.ReLU,
nn.Linear)``) and the norm (``nn.LayerNorm`` with a non-trivial weight and
bias) from standard torch modules with weights it sets itself, and feeds an
input with a large non-zero mean, so that post-LN, pre-LN, "no residual",
"adding the normalised input", "no norm" and friends all give clearly
different outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from tfmcourse import residual
from tfmcourse.checks._core import (
    TINY,
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
from tfmcourse.checks._i18n import N_, tr

# ---------------------------------------------------------------- known mistakes


@mistake(
    "residual_sublayer",
    "post-LN and pre-LN are swapped (or norm_first is ignored, or its default is not False): "
    "norm_first=False (the default, the 2017 paper) is norm(x + sublayer(x)); norm_first=True is x + sublayer(norm(x)).",
)
def _res_swapped(x, sublayer, norm, norm_first=False):
    return norm(x + sublayer(x)) if norm_first else x + sublayer(norm(x))


@mistake(
    "residual_sublayer",
    "there is no residual connection: x itself must be added back — post-LN "
    "norm(x + sublayer(x)), pre-LN x + sublayer(norm(x)).",
)
def _res_none(x, sublayer, norm, norm_first=False):
    return sublayer(norm(x)) if norm_first else norm(sublayer(x))


@mistake(
    "residual_sublayer",
    "the *normalised* input is added to the sublayer output: in pre-LN the "
    "residual path carries the raw x, so return x + sublayer(norm(x)), not norm(x) + sublayer(norm(x)).",
)
def _res_adds_normed_pre(x, sublayer, norm, norm_first=False):
    if norm_first:
        n = norm(x)
        return n + sublayer(n)
    return norm(x + sublayer(x))


@mistake(
    "residual_sublayer",
    "the *normalised* input is added to the sublayer output: post-LN normalises "
    "the sum, norm(x + sublayer(x)); it does not add norm(x) to sublayer(x).",
)
def _res_adds_normed_post(x, sublayer, norm, norm_first=False):
    if norm_first:
        return x + sublayer(norm(x))
    return norm(x) + sublayer(x)


@mistake(
    "residual_sublayer",
    "the *normalised* input is added to the sublayer output (in both modes): "
    "the residual path carries the raw x (pre-LN x + sublayer(norm(x))) or the sum is normalised "
    "(post-LN norm(x + sublayer(x))).",
)
def _res_adds_normed_both(x, sublayer, norm, norm_first=False):
    n = norm(x)
    return n + sublayer(n)


@mistake(
    "residual_sublayer",
    "the norm is never applied: post-LN is norm(x + sublayer(x)), pre-LN x + sublayer(norm(x)).",
)
def _res_no_norm(x, sublayer, norm, norm_first=False):
    return x + sublayer(x)


@mistake(
    "residual_sublayer",
    "the norm is applied to the sublayer output only, x + norm(sublayer(x)): "
    "post-LN normalises the sum, norm(x + sublayer(x)); pre-LN normalises the sublayer's input, "
    "x + sublayer(norm(x)).",
)
def _res_norm_on_branch(x, sublayer, norm, norm_first=False):
    return x + norm(sublayer(x))


@mistake(
    "residual_sublayer",
    "pre-LN normalises the output as well, norm(x + sublayer(norm(x))): pre-LN is "
    "x + sublayer(norm(x)) with nothing after the sum.",
)
def _res_pre_double_norm(x, sublayer, norm, norm_first=False):
    if norm_first:
        return norm(x + sublayer(norm(x)))
    return norm(x + sublayer(x))


# ---------------------------------------------------------------- inputs


def _modules(D: int, d_ff: int, g: torch.Generator):
    """A feed-forward sub-layer and a LayerNorm with check-chosen weights (standard torch.nn only)."""
    sublayer = nn.Sequential(nn.Linear(D, d_ff), nn.ReLU(), nn.Linear(d_ff, D))
    norm = nn.LayerNorm(D)
    with torch.no_grad():
        sublayer[0].weight.copy_(randn(d_ff, D, g=g, scale=D**-0.5))
        sublayer[0].bias.copy_(randn(d_ff, g=g, scale=0.5))
        sublayer[2].weight.copy_(randn(D, d_ff, g=g, scale=d_ff**-0.5))
        sublayer[2].bias.copy_(randn(D, g=g, scale=0.5) + 0.5)
        norm.weight.copy_(1.5 + 0.5 * torch.rand(D, generator=g))
        norm.bias.copy_(-0.7 + 0.4 * torch.rand(D, generator=g))
    return sublayer, norm


@exercise(
    "residual_sublayer",
    lesson=4,
    points=2,
    title="Residual sub-layer, post-LN and pre-LN",
    reference="tfmcourse.residual:residual_sublayer",
)
def check_residual_sublayer(residual_sublayer, *, seed: int = 0) -> None:
    name = "residual_sublayer"
    g = generator(seed)
    B, T, D, d_ff = TINY["B"], TINY["T"], TINY["d_model"], TINY["d_ff"]
    sublayer, norm = _modules(D, d_ff, g)
    x = randn(B, T, D, g=g, scale=1.5, shift=3.0) + randn(D, g=g)  # large non-zero mean

    cases = [
        ({}, N_("post-LN (norm_first not given: the default must be post-LN)")),
        ({"norm_first": True}, N_("pre-LN (norm_first=True)")),
        ({"norm_first": False}, N_("post-LN (norm_first=False)")),
    ]
    for kwargs, label in cases:
        x0 = x.clone()
        got = call(name, residual_sublayer, x, sublayer, norm, **kwargs)
        require(
            torch.equal(x, x0),
            name,
            tr("it changed x in place (for {label}); use x + ..., not x += ...", label=tr(label)),
        )
        expect_tensor(name, got, (B, T, D), what=tr("output {label}", label=tr(label)), axes="B,T,D")
        with torch.no_grad():
            want = residual.residual_sublayer(x, sublayer, norm, **kwargs)
            # the same thing written with torch's own modules in the torch convention
            if kwargs.get("norm_first"):
                builtin = x + sublayer(norm(x))
            else:
                builtin = norm(x + sublayer(x))
        assert_close(
            name,
            got.detach(),
            want,
            case=tr("for {label}", label=tr(label)),
            mistake_args=(x, sublayer, norm),
            mistake_kwargs=kwargs,
        )
        assert_close(
            name, got.detach(), builtin, case=tr("for {label} (vs nn.LayerNorm / nn.Linear)", label=tr(label))
        )

    # a hand-checkable property: a sub-layer that outputs zeros makes pre-LN the identity
    zero = nn.Linear(D, D)
    with torch.no_grad():
        zero.weight.zero_()
        zero.bias.zero_()
    got = call(name, residual_sublayer, x, zero, norm, norm_first=True)
    expect_tensor(name, got, (B, T, D), what="output with a zero sub-layer (pre-LN)", axes="B,T,D")
    require(
        torch.allclose(got.detach(), x, rtol=1e-5, atol=1e-5),
        name,
        "with a sub-layer that outputs zeros, pre-LN must return x unchanged (x + 0): the residual "
        "path must carry the raw x",
    )
    got = call(name, residual_sublayer, x, zero, norm, norm_first=False)
    expect_tensor(name, got, (B, T, D), what="output with a zero sub-layer (post-LN)", axes="B,T,D")
    with torch.no_grad():
        want = norm(x)
    require(
        torch.allclose(got.detach(), want, rtol=1e-4, atol=1e-5),
        name,
        "with a sub-layer that outputs zeros, post-LN must return norm(x)",
    )

    passed(
        name,
        "post-LN norm(x + sublayer(x)) by default, pre-LN x + sublayer(norm(x)) with norm_first=True; "
        "agrees with the same nn.Linear/nn.LayerNorm modules composed by hand",
    )
