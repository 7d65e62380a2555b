"""Checks for lesson 11: ``attend_with_cache`` and ``online_softmax_attention``.

Tolerances: outputs are compared with the reference and with
``F.scaled_dot_product_attention`` at rtol 1e-4, atol 1e-5 in float64. The
huge-score case is drawn so that the largest score of every query beats the
next by more than 50, so every exact method gives the same output to float
precision, while a plain ``exp`` overflows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from tfmcourse import inference
from tfmcourse.checks._core import (
    CheckFailed,
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
from tfmcourse.checks._grader import is_remote
from tfmcourse.checks._i18n import tr

# ---------------------------------------------------------------- known mistakes: attend_with_cache


def _append(cache, k_new, v_new, front=False):
    if cache is None:
        return k_new, v_new
    if front:
        return torch.cat([k_new, cache[0]], 2), torch.cat([v_new, cache[1]], 2)
    return torch.cat([cache[0], k_new], 2), torch.cat([cache[1], v_new], 2)


def _attend(q, K, V, scale):
    return torch.softmax(q @ K.transpose(-2, -1) * scale, dim=-1) @ V


@mistake("attend_with_cache", "the scores are not scaled: divide q·kᵀ by sqrt(d) as in full attention.")
def _awc_no_scale(q, k_new, v_new, cache=None):
    K, V = _append(cache, k_new, v_new)
    return _attend(q, K, V, 1.0), (K, V)


@mistake(
    "attend_with_cache",
    "the scale uses the size of the values: divide by sqrt(d), d the size of q and k (here d ≠ dv).",
)
def _awc_scale_dv(q, k_new, v_new, cache=None):
    K, V = _append(cache, k_new, v_new)
    return _attend(q, K, V, 1 / math.sqrt(v_new.shape[-1])), (K, V)


@mistake(
    "attend_with_cache",
    "the query does not see its own key: append k_new and v_new to the cache *before* attending "
    "(position t may attend to itself, as in causal self-attention).",
)
def _awc_not_itself(q, k_new, v_new, cache=None):
    if cache is None:
        return v_new.clone(), (k_new, v_new)
    out = _attend(q, cache[0], cache[1], 1 / math.sqrt(q.shape[-1]))
    return out, _append(cache, k_new, v_new)


@mistake(
    "attend_with_cache",
    "the new key and value are put at the front of the cache: append them at the end of the time "
    "axis (dim 2), so the cache keeps positions in order.",
)
def _awc_prepend(q, k_new, v_new, cache=None):
    K, V = _append(cache, k_new, v_new, front=True)
    return _attend(q, K, V, 1 / math.sqrt(q.shape[-1])), (K, V)


@mistake(
    "attend_with_cache",
    "the softmax runs over the query axis (dim=-2): with one query every weight becomes 1. "
    "Normalise over the keys (dim=-1).",
)
def _awc_softmax_queries(q, k_new, v_new, cache=None):
    K, V = _append(cache, k_new, v_new)
    w = torch.softmax(q @ K.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-2)
    return w @ V, (K, V)


# ---------------------------------------------------------------- known mistakes: online_softmax_attention


def _blocks(S, b):
    return [(s, min(s + b, S)) for s in range(0, S, b)]


@mistake(
    "online_softmax_attention",
    "exp is taken of the raw scores (no running max): it overflows for large scores (inf/inf = NaN). "
    "Subtract the running max before exp and rescale the old sums by exp(m_old − m_new).",
)
def _osa_no_max(q, k, v, block_size):
    scale = 1 / math.sqrt(q.shape[-1])
    num, den = 0, 0
    for s, e in _blocks(k.shape[-2], block_size):
        p = torch.exp(q @ k[..., s:e, :].transpose(-2, -1) * scale)
        num, den = num + p @ v[..., s:e, :], den + p.sum(-1, keepdim=True)
    return num / den


@mistake(
    "online_softmax_attention",
    "the old running sum and accumulator are not rescaled when the max grows: multiply both by "
    "exp(m_old − m_new) before adding the new block.",
)
def _osa_no_rescale(q, k, v, block_size):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1] + (1,), float("-inf"))
    num, den = 0, 0
    for s, e in _blocks(k.shape[-2], block_size):
        sc = q @ k[..., s:e, :].transpose(-2, -1) * scale
        m = torch.maximum(m, sc.amax(-1, keepdim=True))
        p = torch.exp(sc - m)
        num, den = num + p @ v[..., s:e, :], den + p.sum(-1, keepdim=True)
    return num / den


@mistake(
    "online_softmax_attention",
    "the last, shorter block is skipped: when block_size does not divide S, the final block has "
    "S mod block_size keys (range(0, S, block_size) and slicing handle it).",
)
def _osa_drop_last(q, k, v, block_size):
    S = k.shape[-2]
    full = max(block_size * (S // block_size), min(block_size, S))
    return _osa_reference_like(q, k[..., :full, :], v[..., :full, :], block_size)


@mistake(
    "online_softmax_attention",
    "each block is normalised on its own and the block outputs are averaged: blocks must share "
    "one softmax — keep a running max and a running sum across blocks.",
)
def _osa_average_blocks(q, k, v, block_size):
    scale = 1 / math.sqrt(q.shape[-1])
    outs = [
        torch.softmax(q @ k[..., s:e, :].transpose(-2, -1) * scale, -1) @ v[..., s:e, :]
        for s, e in _blocks(k.shape[-2], block_size)
    ]
    return sum(outs) / len(outs)


@mistake("online_softmax_attention", "the scores are not scaled: multiply q·kᵀ by 1/sqrt(d).")
def _osa_no_scale(q, k, v, block_size):
    return _osa_reference_like(q * math.sqrt(q.shape[-1]), k, v, block_size)


def _osa_reference_like(q, k, v, block_size):
    return inference.online_softmax_attention(q, k, v, block_size)


# ---------------------------------------------------------------- checks: attend_with_cache


@exercise(
    "attend_with_cache",
    lesson=11,
    points=2,
    title="Attention with a key/value cache",
    reference="tfmcourse.inference:attend_with_cache",
)
def check_attend_with_cache(attend_with_cache, *, seed: int = 0) -> None:
    name = "attend_with_cache"
    g = generator(seed)
    B, H = 2, 3
    T, d, dv = int(torch.randint(5, 9, (1,), generator=g)), int(torch.randint(5, 9, (1,), generator=g)), 4
    q, k, v = randn(B, H, T, d, g=g, scale=1.5), randn(B, H, T, d, g=g, scale=1.5), randn(B, H, T, dv, g=g)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    full = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=~causal).float()
    cache = ref_cache = None
    for t in range(T):
        args = (q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1])
        inputs = [a.clone() for a in args] + ([c.clone() for c in cache] if isinstance(cache, tuple) else [])
        got = call(name, attend_with_cache, *args, cache)
        require(
            all(torch.equal(a, b) for a, b in zip(list(args) + list(cache or ()), inputs)),
            name,
            tr("it modified its inputs at step t={t}", t=t),
        )
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(
                tr(
                    "{name}: should return (out, cache), got {got_type}",
                    name=name,
                    got_type=type(got).__name__,
                )
            )
        out, new_cache = got
        if not (isinstance(new_cache, tuple) and len(new_cache) == 2):
            raise CheckFailed(
                tr(
                    "{name}: the cache should be a tuple (K, V), got {new_cache_type}",
                    name=name,
                    new_cache_type=type(new_cache).__name__,
                )
            )
        expect_tensor(name, out, (B, H, 1, dv), what=tr("out at step t={t}", t=t), axes="B,H,1,dv")
        expect_tensor(
            name,
            new_cache[0],
            (B, H, t + 1, d),
            what=tr("cached K after step t={t} (keys on the time axis, dim 2)", t=t),
            axes="B,H,t+1,d",
        )
        expect_tensor(
            name,
            new_cache[1],
            (B, H, t + 1, dv),
            what=tr("cached V after step t={t}", t=t),
            axes="B,H,t+1,dv",
        )
        ref_out, ref_cache = inference.attend_with_cache(*args, ref_cache)
        kw = dict(mistake_args=args, mistake_kwargs={"cache": cache})
        assert_close(
            name,
            new_cache[0],
            ref_cache[0],
            what="cached K",
            case=tr("after step t={t}", t=t),
            mistake_pick=lambda r: r[1][0],
            **kw,
        )
        assert_close(
            name,
            out,
            ref_out,
            what="out",
            case=tr("at step t={t} (B={B}, H={H}, d={d}, dv={dv})", t=t, B=B, H=H, d=d, dv=dv),
            mistake_pick=lambda r: r[0],
            **kw,
        )
        assert_close(
            name, out, full[:, :, t : t + 1], what="out (vs full causal attention)", case=tr("at t={t}", t=t)
        )
        cache = new_cache
    passed(
        name,
        tr("{T} steps give exactly causal self-attention; the cache keeps keys and values in order", T=T),
    )


# ---------------------------------------------------------------- checks: online_softmax_attention


class _ScoreMatrixProbe(TorchFunctionMode):
    """Records whether any torch operation produced a tensor ending in (T, S) or (S, T)."""

    def __init__(self, T: int, S: int):
        super().__init__()
        self.shapes = {(T, S), (S, T)}
        self.seen = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor) and t.dim() >= 2 and tuple(t.shape[-2:]) in self.shapes:
                self.seen = True
        return out


def _call_watching_scores(name: str, impl, q: Tensor, k: Tensor, v: Tensor, block_size: int):
    """(the output, whether the call formed a (T, S) or (S, T) tensor), in process or out."""
    T, S = q.shape[-2], k.shape[-2]
    if is_remote(impl):  # secure grading: the learner's process watches its own operations
        return impl.grader_call_watching(name, (q, k, v, block_size), {}, [(T, S), (S, T)])
    probe = _ScoreMatrixProbe(T, S)
    with probe:
        got = call(name, impl, q, k, v, block_size)
    return got, probe.seen


def _huge_scores(g: torch.Generator, B: int, T: int, S: int, d: int, sign: float):
    """q, k whose scores are about sign·1e4 ± a few hundred, each query's top score 50 clear of the next."""
    while True:
        q, k = randn(B, T, d, g=g, scale=20.0), randn(B, S, d, g=g, scale=20.0)
        q[..., 0], k[..., 0] = 100.0, sign * 100.0 * math.sqrt(d)
        top2 = (q.double() @ k.double().transpose(-2, -1) / math.sqrt(d)).topk(2, -1).values
        if bool((top2[..., 0] - top2[..., 1] > 50).all()):
            return q, k


@exercise(
    "online_softmax_attention",
    lesson=11,
    points=2,
    title="Attention block by block (online softmax)",
    reference="tfmcourse.inference:online_softmax_attention",
)
def check_online_softmax_attention(online_softmax_attention, *, seed: int = 0) -> None:
    name = "online_softmax_attention"
    g = generator(seed)
    B, H, T, d, dv = (
        2,
        3,
        int(torch.randint(3, 7, (1,), generator=g)),
        8,
        7,
    )  # d, dv != T: no shape coincidence
    S = int(torch.randint(23, 40, (1,), generator=g))
    q, k, v = randn(B, H, T, d, g=g, scale=1.5), randn(B, H, S, d, g=g, scale=1.5), randn(B, H, S, dv, g=g)
    b = int(torch.randint(4, 9, (1,), generator=g))
    while S % b == 0:
        b += 1
    cases = [
        (tr("block_size={b}, which does not divide S={S}", b=b, S=S), q, k, v, b),
        ("block_size=1", q, k, v, 1),
        (f"block_size=S={S}", q, k, v, S),
        (tr("block_size={block} > S", block=S + 5), q, k, v, S + 5),
        (tr("3-D inputs (B, T, d), block_size={b}", b=b), q[:, 0], k[:, 0], v[:, 0], b),
    ]
    for sign in (1.0, -1.0):
        qh, kh = _huge_scores(g, B, T, S, d, sign)
        cases.append(
            (
                tr("scores around {score:+.0e} (block_size={b})", score=sign * 1e4, b=b),
                qh,
                kh,
                v[:, 0],
                b,
            )
        )
    huge = {c[0] for c in cases[-2:]}  # the two cases with scores near ±1e4
    for label, qq, kk, vv, bs in cases:
        inputs = [t.clone() for t in (qq, kk, vv)]
        if bs >= kk.shape[-2]:
            got, formed = call(name, online_softmax_attention, qq, kk, vv, bs), False
        else:
            got, formed = _call_watching_scores(name, online_softmax_attention, qq, kk, vv, bs)
        require(
            all(torch.equal(a, b2) for a, b2 in zip((qq, kk, vv), inputs)),
            name,
            tr("it modified its inputs ({label})", label=tr(label)),
        )
        expect_tensor(
            name, got, tuple(qq.shape[:-1]) + (vv.shape[-1],), what=tr("out ({label})", label=tr(label))
        )
        require(
            bool(torch.isfinite(got).all()),
            name,
            tr(
                "the output has inf or NaN ({label}). Subtract the running max before exp: exp of a score near 1e4 overflows float32.",
                label=tr(label),
            )
            + ("" if label in huge else tr(" (this case has ordinary scores)")),
        )
        expected = F.scaled_dot_product_attention(qq.double(), kk.double(), vv.double()).float()
        assert_close(
            name, got, expected, case=tr("with {label}", label=tr(label)), mistake_args=(qq, kk, vv, bs)
        )
        if formed:
            raise CheckFailed(
                tr(
                    "{name}: the values are right, but the whole (T, S) = ({n_queries}, {n_keys}) score matrix was formed ({label}). The point of the exercise is to touch only one block of block_size keys at a time: compute q @ k_blockᵀ inside the loop over blocks.",
                    name=name,
                    n_queries=qq.shape[-2],
                    n_keys=kk.shape[-2],
                    label=tr(label),
                )
            )
    passed(
        name,
        "equals F.scaled_dot_product_attention for block sizes that do not divide S, 1, S and > S; "
        "finite at ±1e4 scores; never forms the (T, S) scores",
    )
