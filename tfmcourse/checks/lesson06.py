"""Checks for lesson 06: ``causal_mask``, ``padding_mask``, ``scaled_dot_product_attention``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tfmcourse import attention, masks
from tfmcourse.checks._core import (
    MASK_SENSE,
    CheckFailed,
    assert_close,
    call,
    exercise,
    expect_tensor,
    generator,
    item_locator,
    mistake,
    passed,
    randn,
    require,
)

# ---------------------------------------------------------------- known mistakes


@mistake(
    "causal_mask",
    "the diagonal is blocked too (off by one): a token must be able to attend to "
    "itself, so block only j > i — use triu with diagonal=1.",
)
def _causal_blocks_diagonal(T):
    return torch.ones(T, T, dtype=torch.bool).triu(0)


@mistake(
    "causal_mask",
    "each query can still see the next token (off by one the other way): block every "
    "j > i, i.e. triu with diagonal=1, not 2.",
)
def _causal_sees_next(T):
    return torch.ones(T, T, dtype=torch.bool).triu(2)


@mistake(
    "causal_mask",
    "the mask is inverted: True must mean *blocked* (the future), so the past and the diagonal are False."
    + MASK_SENSE,
)
def _causal_inverted(T):
    return ~torch.ones(T, T, dtype=torch.bool).triu(1)


@mistake(
    "causal_mask",
    "the past is blocked instead of the future: True belongs strictly *above* the "
    "diagonal (key j after query i).",
)
def _causal_blocks_past(T):
    return torch.ones(T, T, dtype=torch.bool).tril(-1)


@mistake(
    "padding_mask",
    "the mask is inverted: True must mark the pads (blocked), False the real tokens." + MASK_SENSE,
)
def _padding_inverted(tokens, pad_id):
    return tokens != pad_id


@mistake("padding_mask", "the pad id is hard-coded as 0: compare with the pad_id argument.")
def _padding_hardcoded_zero(tokens, pad_id):
    return tokens == 0


def _scores(q, k, scale):
    return q @ k.transpose(-2, -1) * scale


@mistake(
    "scaled_dot_product_attention",
    "the scores are not scaled: divide q·kᵀ by sqrt(d_k) before "
    "the softmax, or large d_k saturates the softmax.",
)
def _sdpa_no_scale(q, k, v, attn_mask=None):
    w = attention.masked_softmax(_scores(q, k, 1.0), attn_mask)
    return w @ v, w


@mistake("scaled_dot_product_attention", "the scores are divided by d_k instead of sqrt(d_k).")
def _sdpa_scale_by_d(q, k, v, attn_mask=None):
    w = attention.masked_softmax(_scores(q, k, 1.0 / q.shape[-1]), attn_mask)
    return w @ v, w


@mistake("scaled_dot_product_attention", "the scores are multiplied by sqrt(d_k) instead of divided by it.")
def _sdpa_times_sqrt(q, k, v, attn_mask=None):
    w = attention.masked_softmax(_scores(q, k, math.sqrt(q.shape[-1])), attn_mask)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "the softmax runs over the query axis (dim=-2): each query's "
    "weights over the keys must sum to 1, so use softmax(dim=-1).",
)
def _sdpa_softmax_queries(q, k, v, attn_mask=None):
    s = _scores(q, k, 1 / math.sqrt(q.shape[-1]))
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, float("-inf"))
    w = torch.softmax(s, dim=-2).nan_to_num(0.0)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "the mask is used inverted: True means *blocked*, so fill the "
    "scores where the mask is True (masked_fill(mask, -inf)), not where it is False." + MASK_SENSE,
)
def _sdpa_inverted_mask(q, k, v, attn_mask=None):
    w = attention.masked_softmax(
        _scores(q, k, 1 / math.sqrt(q.shape[-1])), None if attn_mask is None else ~attn_mask
    )
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "the mask is applied after the softmax: zeroing weights afterwards "
    "leaves rows that no longer sum to 1. Fill blocked scores with -inf *before* the softmax.",
)
def _sdpa_mask_after_softmax(q, k, v, attn_mask=None):
    w = torch.softmax(_scores(q, k, 1 / math.sqrt(q.shape[-1])), dim=-1)
    if attn_mask is not None:
        w = w.masked_fill(attn_mask, 0.0)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "a fully blocked row gives NaN: softmax of a row of -inf is 0/0. "
    "Give such rows zero weights (e.g. masked_fill the weights with 0 afterwards, or use nan_to_num).",
)
def _sdpa_nan_rows(q, k, v, attn_mask=None):
    s = _scores(q, k, 1 / math.sqrt(q.shape[-1]))
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "a fully blocked row gets uniform weights: filling with a large "
    "negative number (-1e9) instead of -inf makes an all-blocked row uniform. Such a row must get "
    "all-zero weights and a zero output.",
)
def _sdpa_uniform_rows(q, k, v, attn_mask=None):
    s = _scores(q, k, 1 / math.sqrt(q.shape[-1]))
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, -1e9)
    w = torch.softmax(s, dim=-1)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "the mask is applied by multiplying the scores (scores * ~mask, or * mask): a blocked score "
    "becomes 0, and exp(0) = 1 > 0, so the blocked key still gets weight. Multiplying by 0 does not "
    "remove a key: fill the blocked scores with -inf (masked_fill) before the softmax.",
)
def _sdpa_product_mask(q, k, v, attn_mask=None):
    s = _scores(q, k, 1 / math.sqrt(q.shape[-1]))
    w = torch.softmax(s if attn_mask is None else s * ~attn_mask, dim=-1)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "the mask is applied by multiplying the scores with it (scores * mask): a score times 0 is "
    "0 and exp(0) = 1 > 0, so nothing is removed (and True = blocked is used the wrong way round). "
    "Fill the blocked scores with -inf (masked_fill) before the softmax.",
)
def _sdpa_product_mask_inverted(q, k, v, attn_mask=None):
    s = _scores(q, k, 1 / math.sqrt(q.shape[-1]))
    w = torch.softmax(s if attn_mask is None else s * attn_mask, dim=-1)
    return w @ v, w


@mistake(
    "scaled_dot_product_attention",
    "a lower-rank mask is broadcast the wrong way: its first axis is lined up with the batch axis "
    "(mask[:, None, :]), so a (T, S) mask blocks by sample instead of by query row. Masks "
    "broadcast from the right: use a (T, S) mask as it is against (..., T, S) scores.",
)
def _sdpa_batch_aligned(q, k, v, attn_mask=None):
    s = _scores(q, k, 1 / math.sqrt(q.shape[-1]))
    m = attn_mask
    if m is not None and 1 < m.dim() < s.dim():
        m = m.reshape(m.shape[0], *([1] * (s.dim() - m.dim())), *m.shape[1:])
    w = attention.masked_softmax(s, m)
    return w @ v, w


# ---------------------------------------------------------------- checks


@exercise("causal_mask", lesson=6, points=1, title="Causal mask", reference="tfmcourse.masks:causal_mask")
def check_causal_mask(causal_mask, *, seed: int = 0) -> None:
    name = "causal_mask"
    g = generator(seed)
    # every size depends on the seed (hidden inputs in secure grading); large first:
    # mistakes are told apart there
    sizes = [int(torch.randint(6, 41, (1,), generator=g)), int(torch.randint(3, 6, (1,), generator=g)), 2, 1]
    for T in sizes:
        got = call(name, causal_mask, T)
        expect_tensor(name, got, (T, T), dtype=torch.bool, what=f"mask for T={T}", axes="T,T")
        assert_close(
            name,
            got,
            masks.causal_mask(T),
            what="mask",
            case=f"for T={T}",
            mistake_args=(T,),
            hint="True = blocked: query i may not see key j > i.",
        )
    passed(name, f"(T, T) bool, True strictly above the diagonal, for T in {sizes}")


@exercise("padding_mask", lesson=6, points=1, title="Padding mask", reference="tfmcourse.masks:padding_mask")
def check_padding_mask(padding_mask, *, seed: int = 0) -> None:
    name = "padding_mask"
    g = generator(seed)
    pad_ids = (0, int(torch.randint(1, 4, (1,), generator=g)))
    for pad_id in pad_ids:
        B, S = int(torch.randint(3, 6, (1,), generator=g)), int(torch.randint(6, 13, (1,), generator=g))
        tokens = torch.randint(4, 20, (B, S), generator=g)
        # one full row, one of length 1, the others random: all depend on the seed
        lengths = [S, 1] + torch.randint(2, S, (B - 2,), generator=g).tolist()
        for b, n in enumerate(lengths):
            tokens[b, n:] = pad_id
        before = tokens.clone()
        got = call(name, padding_mask, tokens, pad_id)
        require(
            torch.equal(tokens, before),
            name,
            "it changed the tokens tensor it was given; build a new mask instead",
        )
        expect_tensor(name, got, (B, S), dtype=torch.bool, what="mask", axes="B,S")
        assert_close(
            name,
            got,
            masks.padding_mask(tokens, pad_id),
            what="mask",
            case=f"with pad_id={pad_id}",
            mistake_args=(tokens, pad_id),
        )
    passed(name, f"(B, S) bool, True exactly at the pads, for pad ids {pad_ids[0]} and {pad_ids[1]}")


def _sdpa_cases(g: torch.Generator):
    """(label, q, k, v, mask, item labels): T != S and d != dv so transposes cannot hide;
    B, H, T, S all distinct except in the one case that puts B = T on purpose."""
    B, H, T, S, d, dv = 2, 3, 5, 7, 6, 4
    q, k, v = randn(B, T, d, g=g, scale=2.0), randn(B, S, d, g=g, scale=2.0), randn(B, S, dv, g=g)
    yield "without a mask, q (2,5,6), k (2,7,6), v (2,7,4)", q, k, v, None, None
    q4, k4, v4 = randn(B, H, T, d, g=g, scale=2.0), randn(B, H, S, d, g=g, scale=2.0), randn(B, H, S, dv, g=g)
    yield "with heads, q (2,3,5,6), k (2,3,7,6), v (2,3,7,4)", q4, k4, v4, None, None
    causal = torch.ones(T, S, dtype=torch.bool).triu(1 + S - T)
    # B = T: a (T, S) mask lined up with the batch axis has the right shape and blocks the wrong rows
    qs, ks, vs = randn(T, T, d, g=g, scale=2.0), randn(T, S, d, g=g, scale=2.0), randn(T, S, dv, g=g)
    yield "with a (T, S) causal-style mask and B = T = 5, q (5,5,6), k (5,7,6)", qs, ks, vs, causal, None
    yield "with a (T, S) causal-style mask", q, k, v, causal, None
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[0, int(torch.randint(2, S - 1, (1,), generator=g)) :] = True
    pad[1, 6:] = True
    yield "with a key-padding mask broadcast as (B, 1, 1, S)", q4, k4, v4, pad[:, None, None, :], None
    keys = torch.zeros(S, dtype=torch.bool)
    keys[torch.randperm(S, generator=g)[:3]] = True
    yield "with an (S,) = (7,) mask on every query, q (2,3,5,6)", q4, k4, v4, keys, None
    rows = torch.rand(T, S, generator=g) < 0.3
    rows[:, -1] = False
    rows[2, :] = True
    yield "with a (T, S) mask that blocks query 2 completely", q, k, v, rows, None
    blocked = torch.rand(B, T, S, generator=g) < 0.4
    blocked[0, 2, :] = True  # a fully blocked row
    yield "with a random (B, T, S) mask that blocks query 2 of sample 0 completely", q, k, v, blocked, None
    allpad = pad.clone()
    allpad[1] = True
    yield (
        "with a (B, 1, 1, S) key-padding mask where sample 1 is all pads",
        q4,
        k4,
        v4,
        allpad[:, None, None, :],
        {1: "the all-pad sequence"},
    )


@exercise(
    "scaled_dot_product_attention",
    lesson=6,
    points=2,
    title="Scaled dot-product attention",
    reference="tfmcourse.attention:scaled_dot_product_attention",
)
def check_scaled_dot_product_attention(scaled_dot_product_attention, *, seed: int = 0) -> None:
    name = "scaled_dot_product_attention"
    g = generator(seed)
    for label, q, k, v, m, items in _sdpa_cases(g):
        locate = item_locator(items or {})
        inputs = [t.clone() for t in (q, k, v)] + ([m.clone()] if m is not None else [])
        got = call(name, scaled_dot_product_attention, q, k, v, attn_mask=m)
        for t, t0 in zip((q, k, v, m), inputs):
            require(
                t is None or torch.equal(t, t0),
                name,
                f"it modified one of its inputs in place {label}; use out-of-place ops (masked_fill, not masked_fill_)",
            )
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(
                f"{name}: should return a tuple (out, weights), got {type(got).__name__}"
                + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else "")
            )
        out, w = got
        T, S, dv = q.shape[-2], k.shape[-2], v.shape[-1]
        lead = tuple(q.shape[:-2])
        expect_tensor(
            name,
            w,
            lead + (T, S),
            what=f"weights {label}",
            axes=",".join(["B", "H"][: len(lead)] + ["T", "S"]),
        )
        expect_tensor(
            name,
            out,
            lead + (T, dv),
            what=f"out {label}",
            axes=",".join(["B", "H"][: len(lead)] + ["T", "dv"]),
        )
        ref_out, ref_w = attention.scaled_dot_product_attention(q, k, v, attn_mask=m)
        args = (q, k, v)
        assert_close(
            name,
            w,
            ref_w,
            what="weights",
            case=label,
            mistake_args=args,
            mistake_kwargs={"attn_mask": m},
            mistake_pick=lambda r: r[1],
            locate=locate,
        )
        assert_close(
            name,
            out,
            ref_out,
            what="out",
            case=label,
            mistake_args=args,
            mistake_kwargs={"attn_mask": m},
            mistake_pick=lambda r: r[0],
            hint="out = weights @ v",
            locate=locate,
        )
        if m is not None:
            full = torch.broadcast_to(m, w.shape)
            require(bool((w[full] == 0).all()), name, f"blocked positions must get exactly 0 weight {label}")
            empty = full.all(-1)
            rows = w.sum(-1)
            require(
                torch.allclose(rows[~empty], torch.ones_like(rows[~empty]), atol=1e-5),
                name,
                f"each query's weights over the keys must sum to 1 {label}",
            )
            if empty.any():
                require(
                    bool((out[empty] == 0).all()),
                    name,
                    f"a fully blocked query must give a zero output {label}",
                )
        # the torch built-in agrees wherever it is defined, i.e. on every query that sees a key
        # (True = *allowed* there: convert once, visibly)
        allowed = None if m is None else ~torch.broadcast_to(m, w.shape)
        seen = torch.ones(w.shape[:-1], dtype=torch.bool) if m is None else allowed.any(-1)
        builtin = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        assert_close(
            name,
            out[seen],
            builtin[seen],
            what="out (vs torch.nn.functional.scaled_dot_product_attention, on queries that see a key)",
            case=label,
        )
    passed(
        name,
        "matches the reference and torch's built-in; rows sum to 1, blocked → exactly 0, "
        "a fully blocked row → zeros",
    )
