"""Checks for lesson 07: ``split_heads``, ``merge_heads``, ``MultiHeadAttention``."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from tfmcourse import attention
from tfmcourse.checks._core import (
    TINY,
    CheckFailed,
    assert_close,
    call,
    count_parameters,
    exercise,
    expect_tensor,
    generator,
    item_locator,
    load_weights,
    mistake,
    passed,
    randn,
    require,
    set_mode,
)
from tfmcourse.masks import merge_masks
from tfmcourse.torch_interop import load_from_torch

# ---------------------------------------------------------------- known mistakes: split / merge


@mistake(
    "split_heads",
    "the heads are split without the transpose: x.view(B, H, T, d_head) cuts the "
    "(T·D) block of each sample into H slabs that mix positions. Use "
    "x.view(B, T, H, d_head).transpose(1, 2).",
)
def _split_no_transpose(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, n_heads, T, D // n_heads)


@mistake(
    "split_heads",
    "the features are dealt to the heads round-robin (view as (B, T, d_head, H)): "
    "head h must get the contiguous block of features h·d_head … (h+1)·d_head - 1.",
)
def _split_interleaved(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, T, D // n_heads, n_heads).permute(0, 3, 1, 2)


@mistake(
    "merge_heads",
    "the heads are merged without the transpose: x.reshape(B, T, H·d_head) on a "
    "(B, H, T, d_head) tensor mixes positions. Use x.transpose(1, 2).reshape(B, T, H·d_head) "
    "(reshape, or .contiguous().view, after the transpose).",
)
def _merge_no_transpose(x):
    B, H, T, dh = x.shape
    return x.reshape(B, T, H * dh)


@mistake(
    "merge_heads",
    "the heads' features are interleaved (permute to (B, T, d_head, H)): head h's "
    "features must stay a contiguous block h·d_head … (h+1)·d_head - 1.",
)
def _merge_interleaved(x):
    B, H, T, dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, T, dh * H)


@exercise(
    "split_heads", lesson=7, points=1, title="Split into heads", reference="tfmcourse.attention:split_heads"
)
def check_split_heads(split_heads, *, seed: int = 0) -> None:
    name = "split_heads"
    g = generator(seed)
    cases = [(2, 5, 24, 3), (3, 4, 12, 4), (2, 3, 6, 1), (1, 2, 6, 6)]
    for B, T, D, H in cases:
        x = randn(B, T, D, g=g, shift=0.5)
        x0 = x.clone()
        got = call(name, split_heads, x, H)
        require(torch.equal(x, x0), name, "it modified its input in place")
        expect_tensor(
            name,
            got,
            (B, H, T, D // H),
            what=f"output for x {tuple(x.shape)}, n_heads={H}",
            axes="B,H,T,d_head",
        )
        assert_close(
            name,
            got,
            attention.split_heads(x, H),
            case=f"for x {tuple(x.shape)}, n_heads={H}",
            mistake_args=(x, H),
            hint="x.view(B, T, H, D // H).transpose(1, 2)",
        )
    passed(
        name,
        f"(B, T, D) → (B, H, T, D/H), head h = features h·d_head … (h+1)·d_head-1, for {len(cases)} shapes",
    )


@exercise(
    "merge_heads", lesson=7, points=1, title="Merge the heads", reference="tfmcourse.attention:merge_heads"
)
def check_merge_heads(merge_heads, *, seed: int = 0) -> None:
    name = "merge_heads"
    g = generator(seed)
    cases = [(2, 3, 5, 8), (3, 4, 2, 3), (2, 1, 3, 6), (1, 6, 2, 1)]
    for B, H, T, dh in cases:
        # a (B, H, T, d_head) tensor as attention produces it: not contiguous in (B, T, H, d_head) order
        x = randn(B, H, T, dh, g=g, shift=-0.3)
        x0 = x.clone()
        got = call(name, merge_heads, x)
        require(torch.equal(x, x0), name, "it modified its input in place")
        expect_tensor(name, got, (B, T, H * dh), what=f"output for x {tuple(x.shape)}", axes="B,T,D")
        assert_close(
            name,
            got,
            attention.merge_heads(x),
            case=f"for x {tuple(x.shape)}",
            mistake_args=(x,),
            hint="x.transpose(1, 2).reshape(B, T, H * d_head)",
        )
        back = attention.split_heads(got, H)
        require(torch.equal(back, x), name, "merge_heads must be the inverse of split_heads")
    passed(name, f"(B, H, T, d_head) → (B, T, H·d_head), the inverse of split_heads, for {len(cases)} shapes")


# ---------------------------------------------------------------- known mistakes: MultiHeadAttention
# Each takes (params, query, key, value, attn_mask, key_padding_mask) and returns (out, weights).


def _mha_variant(
    params,
    query,
    key,
    value,
    attn_mask=None,
    key_padding_mask=None,
    *,
    split="right",
    merge="right",
    scale="d_head",
    out_proj=True,
    use_attn_mask=True,
    use_kpm=True,
    pad_queries=False,
    fill="-inf",
    residual=False,
    attn_as_kpm=False,
    inverted=False,
):
    H = params["n_heads"]

    def lin(x, n):
        return x @ params[f"{n}.weight"].T + params[f"{n}.bias"]

    def sp(x):
        B, L, D = x.shape
        if split == "no_transpose":
            return x.reshape(B, H, L, D // H)
        return x.reshape(B, L, H, D // H).transpose(1, 2)

    q, k, v = sp(lin(query, "q_proj")), sp(lin(key, "k_proj")), sp(lin(value, "v_proj"))
    D = query.shape[-1]
    s = q @ k.transpose(-2, -1)  # (B, H, T, S)
    s = s * {"d_head": 1 / math.sqrt(D // H), "none": 1.0, "d_model": 1 / math.sqrt(D)}[scale]
    mask = None
    if use_attn_mask and attn_mask is not None:
        mask = attn_mask[:, None, None, :] if (attn_as_kpm and attn_mask.dim() == 2) else attn_mask
    if use_kpm and key_padding_mask is not None:
        kp = key_padding_mask[:, None, :, None] if pad_queries else key_padding_mask[:, None, None, :]
        mask = kp if mask is None else mask | kp
    if inverted and mask is not None:
        mask = ~mask
    if mask is None or fill == "-inf":
        w = attention.masked_softmax(s, mask)
    elif fill == "finite":  # a large negative number: a fully blocked row comes out uniform
        w = torch.softmax(s.masked_fill(mask, -1e9), dim=-1)
    elif fill == "nan":  # -inf without a rule for empty rows
        w = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
    else:  # "product": the scores times the keep-mask
        w = torch.softmax(s * ~mask, dim=-1)
    ctx = w @ v  # (B, H, T, d_head)
    B, _, T, dh = ctx.shape
    merged = (
        ctx.reshape(B, T, H * dh) if merge == "no_transpose" else ctx.transpose(1, 2).reshape(B, T, H * dh)
    )
    out = lin(merged, "out_proj") if out_proj else merged
    return (query + out if residual else out), w


def _register(description, **flags):
    impl = functools.partial(_mha_variant, **flags)
    mistake("MultiHeadAttention", description)(impl)


_register(
    "the heads are split without the transpose: .view(B, H, T, d_head) mixes positions; use "
    ".view(B, T, H, d_head).transpose(1, 2).",
    split="no_transpose",
)
_register(
    "the heads are merged without the transpose: the (B, H, T, d_head) context must become "
    "(B, T, H, d_head) before the reshape to (B, T, D): .transpose(1, 2).reshape(B, T, D).",
    merge="no_transpose",
)
_register(
    "the heads are split and merged without the transpose (the two mistakes do not cancel: "
    "each head then attends over mixed positions).",
    split="no_transpose",
    merge="no_transpose",
)
_register("the scores are not scaled: divide q·kᵀ by sqrt(d_head) before the softmax.", scale="none")
_register(
    "the scores are scaled by sqrt(d_model) instead of sqrt(d_head): each head's dot products "
    "run over d_head = d_model / n_heads features, so divide by sqrt(d_model // n_heads).",
    scale="d_model",
)
_register(
    "the output projection is missing: the merged heads go through out_proj (W_O) before being returned.",
    out_proj=False,
)
_register(
    "attn_mask is ignored: blocked (True) positions of attn_mask must get zero weight.", use_attn_mask=False
)
_register(
    "key_padding_mask is ignored: pads (True) must get zero weight; broadcast the (B, S) mask "
    "as (B, 1, 1, S).",
    use_kpm=False,
)
_register(
    "the padding mask is applied to the queries instead of the keys: key_padding_mask (B, S) "
    "marks *keys* that no query may attend to, so broadcast it as (B, 1, 1, S), not (B, 1, S, 1).",
    pad_queries=True,
)
_register(
    "the masks are ignored: combine attn_mask and key_padding_mask (True = blocked) and fill "
    "the blocked scores with -inf before the softmax.",
    use_attn_mask=False,
    use_kpm=False,
)

_register(
    "a fully blocked query gets uniform weights: filling blocked scores with a large negative "
    "number (-1e9, or the dtype's minimum) instead of -inf makes a query whose keys are all blocked "
    "(an all-pad sequence) average every value. Such a query must get all-zero weights and a zero "
    "context: fill with -inf and zero the rows that are entirely blocked (masked_softmax does).",
    fill="finite",
)
_register(
    "a fully blocked query gives NaN: softmax of a row of -inf is 0/0. A query whose keys are all "
    "blocked (an all-pad sequence) must get zero weights and a zero context, e.g. with "
    "masked_softmax or nan_to_num on the weights.",
    fill="nan",
)
_register(
    "the masks are applied by multiplying the scores (scores * ~mask): a blocked score becomes 0, "
    "and exp(0) = 1 > 0, so the blocked key still gets weight. Fill the blocked scores with -inf "
    "(masked_fill) before the softmax; multiplying by 0 does not remove a key.",
    fill="product",
)
_register(
    "two mistakes at once: attn_mask is ignored *and* the padding mask is applied to the queries "
    "instead of the keys. Combine attn_mask with key_padding_mask broadcast as (B, 1, 1, S).",
    use_attn_mask=False,
    pad_queries=True,
)
_register(
    "the module adds its input back (a residual connection, query + attention): MultiHeadAttention "
    "returns out_proj(merged heads) only; the residual connection and the LayerNorm belong to the "
    "encoder/decoder layer (lesson 08), which wraps this module.",
    residual=True,
)
_register(
    "a (T, S) attn_mask is broadcast as if it were a (B, S) key-padding mask (mask[:, None, None, :]): "
    "it then blocks by sample instead of by query row. A (T, S) attn_mask broadcasts from the right, "
    "against (B, H, T, S) scores as it is.",
    attn_as_kpm=True,
)

_register(
    "the masks are used inverted (True taken as *keep*): True means blocked, so fill the scores "
    "where the merged mask is True. The other sense is a real convention (F.scaled_dot_product_attention "
    "and many tutorials use it) but this course uses nn.MultiheadAttention's: True = blocked.",
    inverted=True,
)


def _torch_mha(D: int, H: int, g: torch.Generator) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(D, H, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(randn(3 * D, D, g=g, scale=1 / math.sqrt(D)))
        mha.in_proj_bias.copy_(randn(3 * D, g=g, scale=0.2))
        mha.out_proj.weight.copy_(randn(D, D, g=g, scale=1 / math.sqrt(D)))
        mha.out_proj.bias.copy_(randn(D, g=g, scale=0.2))
    return mha.eval()


def _weights_of(mha: nn.MultiheadAttention) -> dict[str, torch.Tensor]:
    D = mha.embed_dim
    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    out = {}
    for i, n in enumerate(("q_proj", "k_proj", "v_proj")):
        out[f"{n}.weight"], out[f"{n}.bias"] = w[i * D : (i + 1) * D].clone(), b[i * D : (i + 1) * D].clone()
    out["out_proj.weight"] = mha.out_proj.weight.detach().clone()
    out["out_proj.bias"] = mha.out_proj.bias.detach().clone()
    return out


def _query_locator(blocked_row: int):
    """Names the query of an index into out (B, T, D) or weights (B, H, T, S)."""

    def locate(idx: tuple[int, ...]) -> str:
        t = idx[1] if len(idx) == 3 else idx[2]
        return f"batch item {idx[0]}, query {t}" + (" — the fully blocked query" if t == blocked_row else "")

    return locate


def _mha_cases(g: torch.Generator):
    """(label, query, key, value, attn_mask, key_padding_mask, locate).

    T != S, key != value; B, T, S and H all distinct except in the case that sets B = T on
    purpose (a (T, S) mask lined up with the batch axis would pass a shape test there)."""
    B, T, S, D = TINY["B"], TINY["T"], TINY["S"], TINY["d_model"]
    q, k, v = randn(B, T, D, g=g, shift=0.2), randn(B, S, D, g=g), randn(B, S, D, g=g, shift=-0.2)
    yield f"cross-attention, query {tuple(q.shape)}, key/value {tuple(k.shape)}", q, k, v, None, None, None
    causal = torch.ones(T, S, dtype=torch.bool).triu(1 + S - T)
    # B = T = S = 5, both masks: a (T, S) mask lined up with the batch axis, or a padding mask
    # applied to the queries, has a valid shape here and blocks the wrong entries
    xs = randn(T, T, D, g=g, shift=0.1)
    sq_mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    sq_pad = torch.zeros(T, T, dtype=torch.bool)
    sq_pad[torch.arange(T), (torch.arange(T) + 2).clamp(max=T - 1)] = True
    sq_pad[:, 0] = False
    yield (
        "self-attention with a causal attn_mask and a key_padding_mask, B = T = S = 5",
        xs,
        xs,
        xs,
        sq_mask,
        sq_pad,
        None,
    )
    x = randn(B, S, D, g=g)
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[0, int(torch.randint(2, S - 1, (1,), generator=g)) :] = True
    pad[1, 6:] = True
    # both masks first: a learner's two mistakes at once are then told apart from each one alone
    self_causal = torch.ones(S, S, dtype=torch.bool).triu(1)
    yield (
        "self-attention (T = S = 7) with a causal attn_mask and a key_padding_mask",
        x,
        x,
        x,
        self_causal,
        pad,
        None,
    )
    yield "self-attention (T = S = 7) with a key_padding_mask", x, x, x, None, pad, None
    yield "cross-attention with a key_padding_mask", q, k, v, None, pad, None
    yield "cross-attention with a (T, S) causal-style attn_mask", q, k, v, causal, None, None
    yield "with both an attn_mask and a key_padding_mask", q, k, v, causal, pad, None
    allpad = pad.clone()
    allpad[1] = True
    yield (
        "cross-attention where sample 1 is all pads",
        q,
        k,
        v,
        None,
        allpad,
        item_locator({1: "the all-pad sequence"}),
    )
    blocked_row = int(torch.randint(0, T, (1,), generator=g))
    rows = torch.rand(T, S, generator=g) < 0.3
    rows[:, 0] = False
    rows[blocked_row] = True
    yield (
        f"with a (T, S) attn_mask that blocks query {blocked_row} completely, and a key_padding_mask",
        q,
        k,
        v,
        rows,
        pad,
        _query_locator(blocked_row),
    )
    per_sample = torch.rand(B, 1, T, S, generator=g) < 0.35
    per_sample[1, 0, -1] = True
    yield (
        "with a (B, 1, T, S) attn_mask (per sample, shared by the heads), last query of sample 1 "
        "fully blocked",
        q,
        k,
        v,
        per_sample,
        None,
        None,
    )


@exercise(
    "MultiHeadAttention",
    lesson=7,
    points=3,
    title="Multi-head attention",
    reference="tfmcourse.attention:MultiHeadAttention",
)
def check_MultiHeadAttention(MultiHeadAttention, *, seed: int = 0) -> None:
    name = "MultiHeadAttention"
    g = generator(seed)
    D, H = TINY["d_model"], TINY["n_heads"]
    mha = call(name, MultiHeadAttention, D, H)
    n = count_parameters(mha)
    if n == 4 * (D * D + D) + 2 * D:
        raise CheckFailed(
            f"{name}: MultiHeadAttention({D}, {H}) has {n} parameters, 2·{D} more than the four "
            f"projections: is there a LayerNorm inside? The residual connection and the LayerNorm "
            f"belong to the encoder/decoder layer (lesson 08), which wraps this module; "
            f"MultiHeadAttention returns out_proj(merged heads) only."
        )
    require(
        n == 4 * (D * D + D),
        name,
        f"MultiHeadAttention({D}, {H}) has {n} parameters, expected {4 * (D * D + D)}: four "
        f"nn.Linear({D}, {D}) with bias (q_proj, k_proj, v_proj, out_proj) — the same as one head "
        f"of full width; splitting into heads adds no parameters",
    )
    ref_torch = _torch_mha(D, H, g)
    weights = _weights_of(ref_torch)
    load_weights(mha, weights, name)
    set_mode(mha, False)
    ref = attention.MultiHeadAttention(D, H)
    load_from_torch(ref, ref_torch).eval()
    params = dict(weights, n_heads=H)
    for label, q, k, v, am, kpm, locate in _mha_cases(g):
        T, S = q.shape[1], k.shape[1]
        inputs = [t.clone() for t in (q, k, v)]
        got = call(name, mha, q, k, v, attn_mask=am, key_padding_mask=kpm, need_weights=True, _no_grad=True)
        require(
            all(torch.equal(a, b) for a, b in zip((q, k, v), inputs)),
            name,
            f"forward modified its inputs in place ({label})",
        )
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(
                f"{name}: with need_weights=True forward should return (out, weights), got "
                f"{type(got).__name__}" + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else "")
            )
        out, w = got
        expect_tensor(name, out, (q.shape[0], T, D), what=f"out ({label})", axes="B,T,D")
        expect_tensor(
            name,
            w,
            (q.shape[0], H, T, S),
            what=f"weights ({label}); one map per head, not averaged",
            axes="B,H,T,S",
        )
        with torch.no_grad():
            ref_out, ref_w = ref(q, k, v, attn_mask=am, key_padding_mask=kpm, need_weights=True)
            # torch takes a per-sample mask as (B·H, T, S)
            t_am = am if am is None or am.dim() < 4 else am.expand(-1, H, -1, -1).reshape(-1, T, S)
            t_out, t_w = ref_torch(
                q, k, v, attn_mask=t_am, key_padding_mask=kpm, need_weights=True, average_attn_weights=False
            )
        margs, mkw = (params, q, k, v), {"attn_mask": am, "key_padding_mask": kpm}
        for what, got_t, want, pick in (("out", out, ref_out, 0), ("attention weights", w, ref_w, 1)):
            assert_close(
                name,
                got_t,
                want,
                what=what,
                case=f"({label})",
                mistake_args=margs,
                mistake_kwargs=mkw,
                mistake_pick=lambda r, i=pick: r[i],
                locate=locate,
            )
        full = merge_masks(am, kpm)
        if full is not None:
            full = torch.broadcast_to(full, w.shape)
            require(
                bool((w[full] == 0).all()),
                name,
                f"blocked keys must get exactly 0 weight ({label})",
            )
        # torch's module agrees wherever it is defined: on queries that see at least one key
        seen = torch.ones(w.shape[0], T, dtype=torch.bool) if full is None else (~full).any(-1).all(1)
        assert_close(
            name,
            out[seen],
            t_out[seen],
            what="out (vs torch.nn.MultiheadAttention with the same weights, queries that see a key)",
            case=f"({label})",
        )
        assert_close(
            name,
            w.transpose(1, 2)[seen],
            t_w.transpose(1, 2)[seen],
            what="weights (vs torch.nn.MultiheadAttention, average_attn_weights=False)",
            case=f"({label})",
        )
    q, k, v = randn(2, 5, D, g=g), randn(2, 7, D, g=g), randn(2, 7, D, g=g)
    got = call(name, mha, q, k, v, _no_grad=True)
    expect_tensor(
        name, got, (2, 5, D), what="output with the default need_weights=False (just `out`)", axes="B,T,D"
    )
    with torch.no_grad():
        assert_close(name, got, ref(q, k, v), what="out with need_weights=False")
    mha_nb = call(name, MultiHeadAttention, D, H, bias=False)
    n = count_parameters(mha_nb)
    require(
        n == 4 * D * D,
        name,
        f"MultiHeadAttention({D}, {H}, bias=False) has {n} parameters, expected "
        f"{4 * D * D}: pass bias=bias to the four nn.Linear layers",
    )
    passed(
        name,
        "equals torch.nn.MultiheadAttention with copied weights (T≠S, padding and causal masks), "
        "per-head weights (B, H, T, S), 4·(D²+D) parameters",
    )
