"""Checks for lesson 02: ``additive_scores``, ``masked_softmax``, ``bahdanau_attention``."""

from __future__ import annotations

import torch

from tfmcourse import attention, seq2seq
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
from tfmcourse.checks._i18n import N_, tr

# ---------------------------------------------------------------- known mistakes: additive_scores


@mistake(
    "additive_scores",
    "there is no tanh: the energy is v · tanh(W_query q + W_key k_j); without the "
    "tanh it is linear in q and k and the query's part is the same shift for every key.",
)
def _add_no_tanh(query, keys, W_query, W_key, v):
    return ((query @ W_query.T)[:, None, :] + keys @ W_key.T) @ v


@mistake(
    "additive_scores",
    "the scores ignore the encoder states (keys): every key gets the same score, so "
    "attention cannot choose. Add W_key k_j inside the tanh.",
)
def _add_ignores_keys(query, keys, W_query, W_key, v):
    return (torch.tanh(query @ W_query.T) @ v)[:, None].expand(keys.shape[0], keys.shape[1])


@mistake(
    "additive_scores",
    "the scores ignore the query (the decoder state): then every output step attends "
    "the same way. Add W_query q inside the tanh.",
)
def _add_ignores_query(query, keys, W_query, W_key, v):
    return torch.tanh(keys @ W_key.T) @ v


@mistake(
    "additive_scores",
    "the tanh is applied after v (tanh(v · (…))): v · tanh(W_query q + W_key k_j) "
    "takes the tanh of the A-dimensional sum first, then the dot product with v.",
)
def _add_tanh_outside(query, keys, W_query, W_key, v):
    return torch.tanh(((query @ W_query.T)[:, None, :] + keys @ W_key.T) @ v)


@mistake(
    "additive_scores",
    "the scores went through a softmax: additive_scores returns the raw energies; the "
    "softmax comes afterwards (masked_softmax).",
)
def _add_softmaxed(query, keys, W_query, W_key, v):
    return torch.softmax(seq2seq.additive_scores(query, keys, W_query, W_key, v), dim=-1)


@mistake(
    "additive_scores",
    "the tanh is applied to each term separately (tanh(W_query q) + tanh(W_key k_j)): "
    "add first, then take one tanh.",
)
def _add_tanh_each(query, keys, W_query, W_key, v):
    return (torch.tanh(query @ W_query.T)[:, None, :] + torch.tanh(keys @ W_key.T)) @ v


# ---------------------------------------------------------------- known mistakes: masked_softmax


@mistake(
    "masked_softmax",
    "pads are left unmasked: the mask is ignored, so blocked positions get weight. "
    "Fill the blocked scores with -inf before the softmax.",
)
def _ms_unmasked(scores, mask=None):
    return torch.softmax(scores, dim=-1)


@mistake(
    "masked_softmax",
    "the mask is used inverted: True means *blocked*, so fill where the mask is True." + MASK_SENSE,
)
def _ms_inverted(scores, mask=None):
    return attention.masked_softmax(scores, None if mask is None else ~mask)


@mistake(
    "masked_softmax",
    "the mask is applied after the softmax: zeroing weights afterwards leaves rows that "
    "no longer sum to 1. Fill the blocked scores with -inf *before* the softmax.",
)
def _ms_after(scores, mask=None):
    w = torch.softmax(scores, dim=-1)
    return w if mask is None else w.masked_fill(mask, 0.0)


@mistake(
    "masked_softmax",
    "the softmax runs over the wrong axis: normalise over the last axis (dim=-1), "
    "the positions being weighted.",
)
def _ms_wrong_axis(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=0).nan_to_num(0.0)


@mistake(
    "masked_softmax",
    "the softmax runs over the wrong axis: normalise over the last axis (dim=-1), "
    "the positions being weighted.",
)
def _ms_wrong_axis_2(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-2).nan_to_num(0.0)


@mistake(
    "masked_softmax",
    "the weights are not a softmax: the scores are divided by their sum instead of "
    "exponentiated and normalised (exp(s_j) / Σ exp(s_k)).",
)
def _ms_sum_normalised(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, 0.0)
    return s / s.sum(-1, keepdim=True)


@mistake(
    "masked_softmax",
    "the weights are not a softmax: exp(s_j) is not divided by Σ_k exp(s_k), so the row does not sum to 1.",
)
def _ms_no_normalise(scores, mask=None):
    e = scores.exp()
    return e if mask is None else e.masked_fill(mask, 0.0)


@mistake(
    "masked_softmax",
    "a fully masked row gives NaN: softmax of a row of -inf is 0/0. Give such rows all-zero "
    "weights (e.g. masked_fill the weights with 0 afterwards, or torch.nan_to_num).",
)
def _ms_nan(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1)


@mistake(
    "masked_softmax",
    "a fully masked row gets uniform weights: filling with a large negative number (-1e9, "
    "or the dtype's minimum) makes an all-blocked row uniform. Such a row must be all zeros.",
)
def _ms_uniform(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, -1e9)
    return torch.softmax(s, dim=-1)


@mistake(
    "masked_softmax",
    "the mask is applied by multiplying the scores (scores * mask, or * ~mask): a blocked score "
    "becomes 0, and exp(0) = 1 > 0, so the blocked position still gets weight. Remove a position "
    "with masked_fill(mask, -inf) before the softmax; multiplying by 0 does not remove it.",
)
def _ms_product(scores, mask=None):
    return torch.softmax(scores if mask is None else scores * ~mask, dim=-1)


@mistake(
    "masked_softmax",
    "the mask is applied by multiplying the scores with it (scores * mask): a score times 0 is 0, "
    "and exp(0) = 1 > 0, so no position is removed (and True = blocked is used the wrong way "
    "round). Use masked_fill(mask, -inf) before the softmax.",
)
def _ms_product_inverted(scores, mask=None):
    return torch.softmax(scores if mask is None else scores * mask, dim=-1)


@mistake(
    "masked_softmax",
    "a lower-rank mask is broadcast the wrong way: its first axis is lined up with the batch axis "
    "(mask[:, None, :]), so a (T, S) mask masks whole samples by row instead of each query row. "
    "A mask broadcasts from the right: (T, S) against scores (B, T, S) means mask[None] — "
    "just use it as it is.",
)
def _ms_batch_aligned(scores, mask=None):
    if mask is not None and 1 < mask.dim() < scores.dim():
        mask = mask.reshape(mask.shape[0], *([1] * (scores.dim() - mask.dim())), *mask.shape[1:])
    return attention.masked_softmax(scores, mask)


# ---------------------------------------------------------------- known mistakes: bahdanau_attention


def _bahdanau(scores, values, mask, *, fill=float("-inf"), after=False, nan_ok=False, dim=-1, product=False):
    if product:
        w = torch.softmax(scores if mask is None else scores * ~mask, dim=dim)
    elif after:
        w = torch.softmax(scores, dim=dim)
        w = w if mask is None else w.masked_fill(mask, 0.0)
    else:
        s = scores if mask is None else scores.masked_fill(mask, fill)
        w = torch.softmax(s, dim=dim)
        if not nan_ok:
            w = w.nan_to_num(0.0)
    return (w[:, :, None] * values).sum(1), w


def _energies(query, keys, W_query, W_key, v):
    return torch.tanh((query @ W_query.T)[:, None, :] + keys @ W_key.T) @ v  # (B, S)


@mistake(
    "bahdanau_attention",
    "the context is built from the keys instead of the values: weight the values "
    "(context = Σ_j α_j v_j); the keys only decide the weights.",
)
def _b_keys(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), keys, key_padding_mask)


@mistake(
    "bahdanau_attention",
    "pads are left unmasked: the key_padding_mask is ignored, so padded positions get "
    "weight. Pass it to the softmax (True = blocked).",
)
def _b_unmasked(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, None)


@mistake(
    "bahdanau_attention",
    "the key_padding_mask is used inverted: True marks the pads, which must get zero weight." + MASK_SENSE,
)
def _b_inverted(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    m = None if key_padding_mask is None else ~key_padding_mask
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, m)


@mistake(
    "bahdanau_attention",
    "the scores ignore the encoder states (keys): every position gets the same "
    "weight. The energy is v · tanh(W_query q + W_key k_j).",
)
def _b_ignores_keys(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = (torch.tanh(query @ W_query.T) @ v)[:, None].expand(keys.shape[0], keys.shape[1])
    return _bahdanau(e, values, key_padding_mask)


@mistake(
    "bahdanau_attention",
    "the scores ignore the query: every decoder step would attend the same way. "
    "The energy is v · tanh(W_query q + W_key k_j).",
)
def _b_ignores_query(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(torch.tanh(keys @ W_key.T) @ v, values, key_padding_mask)


@mistake("bahdanau_attention", "there is no tanh in the energies: v · tanh(W_query q + W_key k_j).")
def _b_no_tanh(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(((query @ W_query.T)[:, None, :] + keys @ W_key.T) @ v, values, key_padding_mask)


@mistake(
    "bahdanau_attention",
    "the weights are not a softmax of the energies: use exp(e_j) / Σ_k exp(e_k) over "
    "the unmasked positions (masked_softmax), not the raw energies.",
)
def _b_raw_scores(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = _energies(query, keys, W_query, W_key, v)
    w = e if key_padding_mask is None else e.masked_fill(key_padding_mask, 0.0)
    return (w[:, :, None] * values).sum(1), w


@mistake(
    "bahdanau_attention",
    "the weights are not a softmax: the energies are normalised by their sum instead "
    "of exponentiated (use masked_softmax).",
)
def _b_sum_normalised(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = _energies(query, keys, W_query, W_key, v)
    e = e if key_padding_mask is None else e.masked_fill(key_padding_mask, 0.0)
    w = e / e.sum(-1, keepdim=True)
    return (w[:, :, None] * values).sum(1), w


@mistake(
    "bahdanau_attention",
    "the weights are not a softmax over the positions: the softmax ran over the batch "
    "axis (dim=0). Normalise over the S source positions (dim=-1).",
)
def _b_softmax_batch(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, key_padding_mask, dim=0)


@mistake(
    "bahdanau_attention",
    "the mask is applied after the softmax: the remaining weights no longer sum to 1. "
    "Mask the energies (with -inf) before the softmax.",
)
def _b_after(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, key_padding_mask, after=True)


@mistake(
    "bahdanau_attention",
    "a sample whose keys are all pads gets NaN: softmax of a row of -inf is 0/0. Give it "
    "zero weights and a zero context (masked_softmax does).",
)
def _b_nan(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, key_padding_mask, nan_ok=True)


@mistake(
    "bahdanau_attention",
    "a sample whose keys are all pads gets uniform weights: filling with -1e9 (or the "
    "dtype's minimum) instead of -inf makes an all-blocked row uniform. It must get zero weights and a zero "
    "context.",
)
def _b_uniform(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, key_padding_mask, fill=-1e9)


@mistake(
    "bahdanau_attention",
    "the padding mask is applied by multiplying the energies (e * ~mask): a padded energy becomes 0, "
    "and exp(0) = 1 > 0, so pads still get weight. Multiplying by 0 does not remove a position: fill "
    "the padded energies with -inf (masked_softmax) before the softmax.",
)
def _b_product(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return _bahdanau(_energies(query, keys, W_query, W_key, v), values, key_padding_mask, product=True)


# ---------------------------------------------------------------- checks


def _params(g, Dq, Dk, A):
    return randn(A, Dq, g=g, scale=0.8), randn(A, Dk, g=g, scale=0.8), randn(A, g=g, scale=1.5)


def _additive_by_linear_layers(query, keys, W_query, W_key, v):
    """The energies computed with torch's own layers (nn.Linear), as a second opinion."""
    lin_q = torch.nn.Linear(W_query.shape[1], W_query.shape[0], bias=False)
    lin_k = torch.nn.Linear(W_key.shape[1], W_key.shape[0], bias=False)
    lin_v = torch.nn.Linear(v.shape[0], 1, bias=False)
    with torch.no_grad():
        lin_q.weight.copy_(W_query)
        lin_k.weight.copy_(W_key)
        lin_v.weight.copy_(v[None])
        return lin_v(torch.tanh(lin_q(query).unsqueeze(1) + lin_k(keys))).squeeze(-1)


@exercise(
    "additive_scores",
    lesson=2,
    points=1,
    title="Additive (Bahdanau) energies",
    reference="tfmcourse.seq2seq:additive_scores",
)
def check_additive_scores(additive_scores, *, seed: int = 0) -> None:
    name = "additive_scores"
    g = generator(seed)
    cases = [
        (N_("(B=2, S=7, Dq=5, Dk=6, A=3)"), 2, 7, 5, 6, 3),
        (N_("(B=3, S=4, Dq=6, Dk=5, A=9)"), 3, 4, 6, 5, 9),
        (N_("(B=1, S=1: a single key)"), 1, 1, 5, 6, 3),
    ]
    for label, B, S, Dq, Dk, A in cases:
        query = randn(B, Dq, g=g, scale=1.3, shift=0.2)
        keys = randn(B, S, Dk, g=g, scale=1.3, shift=-0.3)
        W_query, W_key, v = _params(g, Dq, Dk, A)
        args = (query, keys, W_query, W_key, v)
        before = [a.clone() for a in args]
        got = call(name, additive_scores, *args)
        for a, a0 in zip(args, before):
            require(
                torch.equal(a, a0),
                name,
                "it modified one of its inputs in place; compute new tensors instead",
            )
        expect_tensor(name, got, (B, S), what=tr("scores {label}", label=tr(label)), axes="B,S")
        assert_close(
            name,
            got,
            seq2seq.additive_scores(*args),
            what="scores",
            case=label,
            mistake_args=args,
            hint="e_j = v · tanh(W_query q + W_key k_j): (B, A) broadcast against (B, S, A), then · v",
        )
        assert_close(
            name, got, _additive_by_linear_layers(*args), what="scores (vs nn.Linear layers)", case=label
        )
    passed(name, "v · tanh(W_query q + W_key k_j) for every key, with distinct sizes B, S, Dq, Dk, A")


def _ms_cases(g):
    """(label, scores, mask, locate-labels): B, T, S distinct unless a case says otherwise."""
    B, T, S = 2, 5, 7
    s = randn(B, T, S, g=g, scale=2.0, shift=0.5)
    m = torch.rand(B, T, S, generator=g) < 0.4
    m[..., 0] = False  # no row fully blocked here: the first case tells most mistakes apart
    m[:, :, 1] = True
    yield N_("with a random (B, T, S) = (2, 5, 7) mask, no row fully blocked"), s, m, None
    yield N_("without a mask (mask=None), scores (3, 7)"), randn(3, 7, g=g, scale=2.0, shift=-0.4), None, None
    pad = torch.zeros(B, 1, S, dtype=torch.bool)
    pad[0, :, 4:] = True
    pad[1, :, 6:] = True
    yield N_("with a key-padding mask (B, 1, S) broadcast over T"), s, pad, None
    # a (T, S) mask on scores with B = T: a mask lined up with the batch axis passes no shape test
    sq = randn(T, T, S, g=g, scale=2.0)
    causal = torch.ones(T, S, dtype=torch.bool).triu(1 + S - T)
    yield N_("with a (T, S) = (5, 7) mask on scores (B, T, S) = (5, 5, 7) (B = T)"), sq, causal, None
    # lower-rank masks on B != T != S, with a fully blocked query row
    rows = torch.rand(T, S, generator=g) < 0.3
    rows[:, 0] = False
    rows[3, :] = True  # query 3 sees nothing
    yield N_("with a (T, S) = (5, 7) mask whose query 3 is fully blocked, scores (2, 5, 7)"), s, rows, None
    keys = torch.zeros(S, dtype=torch.bool)
    keys[torch.randperm(S, generator=g)[:3]] = True
    yield N_("with an (S,) = (7,) mask shared by every row, scores (2, 5, 7)"), s, keys, None
    s2 = randn(3, S, g=g, scale=2.0)
    m2 = torch.zeros(3, S, dtype=torch.bool)
    m2[0, 3:] = True
    m2[1, :] = True  # everything masked
    yield N_("with a (3, 7) mask whose second row is fully blocked"), s2, m2, {1: N_("the fully blocked row")}
    s4 = randn(B, 3, T, S, g=g, scale=2.0)
    pad4 = torch.zeros(B, 1, 1, S, dtype=torch.bool)
    pad4[0, ..., 5:] = True
    pad4[1] = True  # sample 1 is all pads
    yield (
        N_("with a (B, 1, 1, S) mask on scores (B, H, T, S) = (2, 3, 5, 7), sample 1 all pads"),
        s4,
        pad4,
        {1: N_("the all-pad sequence")},
    )


@exercise(
    "masked_softmax",
    lesson=2,
    points=1,
    title="Softmax that ignores blocked positions",
    reference="tfmcourse.attention:masked_softmax",
)
def check_masked_softmax(masked_softmax, *, seed: int = 0) -> None:
    name = "masked_softmax"
    g = generator(seed)
    for label, scores, mask, items in _ms_cases(g):
        locate = item_locator(items or {}, what="row" if scores.dim() == 2 else N_("batch item"))
        before = (scores.clone(), None if mask is None else mask.clone())
        got = call(name, masked_softmax, scores, mask)
        require(
            torch.equal(scores, before[0]) and (mask is None or torch.equal(mask, before[1])),
            name,
            tr(
                "it modified its inputs in place {label}; use out-of-place ops (masked_fill, not masked_fill_)",
                label=tr(label),
            ),
        )
        expect_tensor(name, got, tuple(scores.shape), what=tr("weights {label}", label=tr(label)))
        expected = attention.masked_softmax(scores, mask)
        assert_close(
            name, got, expected, what="weights", case=label, mistake_args=(scores, mask), locate=locate
        )
        full = (
            torch.zeros_like(scores, dtype=torch.bool)
            if mask is None
            else torch.broadcast_to(mask, scores.shape)
        )
        empty = full.all(-1)  # fully blocked rows
        builtin = torch.softmax(
            scores.masked_fill(full, float("-inf")), dim=-1
        )  # torch's softmax, -inf at blocks
        assert_close(
            name,
            got[~empty],
            builtin[~empty],
            what="weights (vs torch.softmax with -inf at blocked positions)",
            case=label,
        )
        require(
            bool((got[full] == 0).all()),
            name,
            tr("blocked positions must get exactly 0 weight {label}", label=tr(label)),
        )
        rows = got.sum(-1)
        require(
            torch.allclose(rows[~empty], torch.ones_like(rows[~empty]), atol=1e-5),
            name,
            tr("every row with an unblocked position must sum to 1 {label}", label=tr(label)),
        )
        require(
            bool((got[empty] == 0).all()),
            name,
            tr("a fully blocked row must be all zeros {label}", label=tr(label)),
        )
    passed(
        name,
        "softmax over the last axis, exactly 0 where blocked, rows sum to 1, a fully blocked row → zeros",
    )


def _bahdanau_cases(g):
    B, S, Dq, A = 3, 7, 5, 4
    lengths = [7, 4, 2]
    pad = torch.arange(S)[None, :] >= torch.tensor(lengths)[:, None]  # (B, S)
    # Dk == Dv here (different tensors), so a context built from the keys has the right shape and is named
    yield (
        tr(
            "(B={B}, S={S}, Dq={Dq}, Dk=Dv=6, A={A}, source lengths {lengths})",
            B=B,
            S=S,
            Dq=Dq,
            A=A,
            lengths=lengths,
        ),
        B,
        S,
        Dq,
        6,
        6,
        A,
        pad,
    )
    yield N_("(Dk=6, Dv=9, no key_padding_mask)"), 2, 5, Dq, 6, 9, 3, None
    pad2 = torch.zeros(2, 5, dtype=torch.bool)
    pad2[1, :] = True
    yield N_("(Dk=6, Dv=9, the second sample is all pads)"), 2, 5, Dq, 6, 9, 3, pad2


@exercise(
    "bahdanau_attention",
    lesson=2,
    points=2,
    title="Bahdanau attention",
    reference="tfmcourse.seq2seq:bahdanau_attention",
)
def check_bahdanau_attention(bahdanau_attention, *, seed: int = 0) -> None:
    name = "bahdanau_attention"
    g = generator(seed)
    for label, B, S, Dq, Dk, Dv, A, pad in _bahdanau_cases(g):
        query = randn(B, Dq, g=g, scale=1.3, shift=0.2)
        keys = randn(B, S, Dk, g=g, scale=1.3, shift=-0.3)
        values = randn(B, S, Dv, g=g, scale=1.0, shift=0.5)
        W_query, W_key, v = _params(g, Dq, Dk, A)
        args = (query, keys, values, W_query, W_key, v)
        kwargs = {"key_padding_mask": pad}
        before = [a.clone() for a in args] + ([pad.clone()] if pad is not None else [])
        got = call(name, bahdanau_attention, *args, **kwargs)
        for a, a0 in zip(list(args) + ([pad] if pad is not None else []), before):
            require(
                torch.equal(a, a0),
                name,
                tr("it modified one of its inputs in place {label}", label=tr(label)),
            )
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(
                tr(
                    "{name}: should return a tuple (context, weights), got {got_type}",
                    name=name,
                    got_type=type(got).__name__,
                )
                + (tr(" of length {len_got}", len_got=len(got)) if isinstance(got, (tuple, list)) else "")
            )
        context, weights = got
        expect_tensor(name, weights, (B, S), what=tr("weights {label}", label=tr(label)), axes="B,S")
        if isinstance(context, torch.Tensor) and tuple(context.shape) == (B, Dk) and Dk != Dv:
            raise CheckFailed(
                tr(
                    "{name}: context has shape {context_shape} = (B, Dk), expected (B, Dv) = {expected_shape} {label}. The context is built from the keys instead of the values: weight the values.",
                    name=name,
                    context_shape=tuple(context.shape),
                    expected_shape=(B, Dv),
                    label=tr(label),
                )
            )
        expect_tensor(name, context, (B, Dv), what=tr("context {label}", label=tr(label)), axes="B,Dv")
        ref_c, ref_w = seq2seq.bahdanau_attention(*args, **kwargs)
        real = [S] * B if pad is None else (~pad).sum(-1).tolist()
        locate = item_locator(
            {
                b: N_("every key a pad") if n == 0 else tr("{n} real keys of {S}", n=n, S=S)
                for b, n in enumerate(real)
            },
            what="sample",
        )
        assert_close(
            name,
            weights,
            ref_w,
            what="weights",
            case=label,
            mistake_args=args,
            mistake_kwargs=kwargs,
            mistake_pick=lambda r: r[1],
            locate=locate,
        )
        assert_close(
            name,
            context,
            ref_c,
            what="context",
            case=label,
            mistake_args=args,
            mistake_kwargs=kwargs,
            mistake_pick=lambda r: r[0],
            hint="context = Σ_j weights_j · values_j",
            locate=locate,
        )
        # invariants: pads get exactly 0 and do not matter; rows sum to 1; an all-pad sample gives zeros
        if pad is not None:
            require(
                bool((weights[pad] == 0).all()),
                name,
                tr("padded positions must get exactly 0 weight {label}", label=tr(label)),
            )
            empty = pad.all(-1)
            rows = weights.sum(-1)
            require(
                torch.allclose(rows[~empty], torch.ones_like(rows[~empty]), atol=1e-5),
                name,
                tr("each sample's weights over its real positions must sum to 1 {label}", label=tr(label)),
            )
            require(
                bool((context[empty] == 0).all()) and bool((weights[empty] == 0).all()),
                name,
                tr(
                    "a sample whose keys are all pads must get zero weights and a zero context {label}",
                    label=tr(label),
                ),
            )
            junk = torch.where(pad[..., None], torch.full_like(keys, 50.0), keys)
            junk_v = torch.where(pad[..., None], torch.full_like(values, -50.0), values)
            c2, _ = call(name, bahdanau_attention, query, junk, junk_v, W_query, W_key, v, **kwargs)
            assert_close(
                name,
                c2,
                context,
                what="context",
                case=tr("after changing only the padded keys and values {label}", label=tr(label)),
                hint="pads must not influence the context at all",
            )
    passed(
        name,
        "energies → masked softmax → weighted sum of the values; pads get 0 and change nothing; "
        "an all-pad sample gives zeros",
    )
