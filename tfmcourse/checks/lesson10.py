"""Checks for lesson 10: ``rms_norm``, ``apply_rope``, ``next_token_distribution``, ``train_step``.

Tolerances: values are compared with the package's reference (and torch's
``F.rms_norm``) at rtol 1e-4, atol 1e-5 in float64, on inputs drawn so that a
correct float32 implementation written any reasonable way (float64 inside,
``rsqrt`` or ``sqrt``, complex numbers or stacked pairs for RoPE, sorting or
``topk`` for the filters) passes at every seed. ``top_p`` thresholds are drawn
half-way between two cumulative probabilities, so no correct implementation
can land on the other side of the boundary by rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tfmcourse import decoding, norms, positional
from tfmcourse import train as train_module
from tfmcourse.checks._core import (
    MISTAKES,
    CheckFailed,
    ExerciseNotAttempted,
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

# ---------------------------------------------------------------- known mistakes: rms_norm


@mistake(
    "rms_norm", "eps is added outside the square root: use sqrt(mean(x²) + eps), not sqrt(mean(x²)) + eps."
)
def _rms_eps_outside(x, weight, eps=1e-6):
    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight


@mistake(
    "rms_norm",
    "the mean is subtracted: that is layer norm. RMSNorm divides x itself by its root mean "
    "square, without centring it (and has no shift beta).",
)
def _rms_centred(x, weight, eps=1e-6):
    xc = x - x.mean(-1, keepdim=True)
    return xc / torch.sqrt(xc.pow(2).mean(-1, keepdim=True) + eps) * weight


@mistake("rms_norm", "the weight is not applied: multiply the normalised x by weight (one gain per feature).")
def _rms_no_weight(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@mistake("rms_norm", "the squares are summed, not averaged: the root *mean* square divides by D.")
def _rms_sum(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight


@mistake("rms_norm", "eps is ignored: add the eps argument inside the square root.")
def _rms_no_eps(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True)) * weight


@mistake("rms_norm", "eps is ignored (a fixed 1e-6 is used): add the eps argument inside the square root.")
def _rms_fixed_eps(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


@mistake("rms_norm", "the statistics are taken over the first axis, not the last (feature) axis: use dim=-1.")
def _rms_axis0(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * weight


# ---------------------------------------------------------------- known mistakes: apply_rope


def _angles(T_positions, d, base):
    i = torch.arange(0, d, 2, dtype=torch.float64)
    return T_positions.double()[:, None] * base ** (-i / d)[None, :]  # (T, d/2)


def _rotate_pairs(a, b, theta, dtype):
    c, s = torch.cos(theta).to(dtype), torch.sin(theta).to(dtype)
    return a * c - b * s, a * s + b * c


@mistake(
    "apply_rope",
    "you paired feature i with feature i + d/2 (the half-split, rotate_half convention of "
    "GPT-NeoX and Hugging Face LLaMA code). That is the *other* convention, not a wrong idea, but this "
    "exercise asks for interleaved pairs (2i, 2i+1): the pairing of lesson 05's sin/cos columns, "
    "so that R_p is the same rotation as there. Take a = x[..., 0::2], b = x[..., 1::2] and interleave the result.",
)
def _rope_half_split(x, positions, base=10000.0):
    d = x.shape[-1]
    a, b = x[..., : d // 2], x[..., d // 2 :]
    ra, rb = _rotate_pairs(a, b, _angles(positions, d, base), x.dtype)
    return torch.cat([ra, rb], dim=-1)


@mistake(
    "apply_rope",
    "the rotation goes the wrong way (θ → −θ): the pair becomes (a cos θ − b sin θ, a sin θ + b cos θ).",
)
def _rope_clockwise(x, positions, base=10000.0):
    a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = _rotate_pairs(a, b, -_angles(positions, x.shape[-1], base), x.dtype)
    return torch.stack([ra, rb], -1).flatten(-2)


@mistake(
    "apply_rope",
    "the positions argument is ignored (0, 1, …, T−1 is used): rotate by the given positions, "
    "which need not start at 0 (a cached step starts at the cache's length).",
)
def _rope_arange(x, positions, base=10000.0):
    a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = _rotate_pairs(a, b, _angles(torch.arange(x.shape[-2]), x.shape[-1], base), x.dtype)
    return torch.stack([ra, rb], -1).flatten(-2)


@mistake(
    "apply_rope",
    "the frequencies use the pair index i instead of 2i in the exponent: ω_i = base^(−2i/d), as in lesson 05.",
)
def _rope_i_over_d(x, positions, base=10000.0):
    d = x.shape[-1]
    i = torch.arange(d // 2, dtype=torch.float64)
    theta = positions.double()[:, None] * base ** (-i / d)[None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = _rotate_pairs(a, b, theta, x.dtype)
    return torch.stack([ra, rb], -1).flatten(-2)


@mistake("apply_rope", "the base argument is ignored (10000 is hard-coded): use base in ω_i = base^(−2i/d).")
def _rope_fixed_base(x, positions, base=10000.0):
    a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = _rotate_pairs(a, b, _angles(positions, x.shape[-1], 10000.0), x.dtype)
    return torch.stack([ra, rb], -1).flatten(-2)


@mistake(
    "apply_rope",
    "the rotated pair is not interleaved back: the results (a', b') must go to columns 2i and 2i+1, "
    "not all a' first and then all b'.",
)
def _rope_concat_back(x, positions, base=10000.0):
    a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = _rotate_pairs(a, b, _angles(positions, x.shape[-1], base), x.dtype)
    return torch.cat([ra, rb], -1)


# ---------------------------------------------------------------- known mistakes: next_token_distribution


def _softmax_kept(scaled, keep):
    return torch.softmax(scaled.masked_fill(~keep, float("-inf")), dim=-1)


def _top_p_keep(probs, top_p, strict):
    sp, order = probs.sort(dim=-1, descending=True, stable=True)
    cum = sp.cumsum(-1)
    keep_sorted = (cum <= top_p) if strict else (cum - sp < top_p)
    keep_sorted[..., 0] = True
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def _ntd_variant(
    logits,
    temperature,
    top_k,
    top_p,
    *,
    ties=True,
    strict=False,
    p_before_k=False,
    temp_last=False,
    greedy_last=False,
    renorm=True,
    multiply=False,
):
    V = logits.shape[-1]
    if temperature == 0:
        idx = logits.argmax(-1) if not greedy_last else V - 1 - logits.flip(-1).argmax(-1)
        return F.one_hot(idx, V).to(logits.dtype)
    scaled = logits * temperature if multiply else logits / temperature
    base = logits if temp_last else scaled
    keep = torch.ones_like(logits, dtype=torch.bool)
    if top_k is not None and top_k < V:
        if ties:
            keep = base >= base.topk(top_k, -1).values[..., -1:]
        else:
            keep = torch.zeros_like(keep).scatter(-1, base.topk(top_k, -1).indices, True)
    if top_p is not None and top_p < 1:
        src = torch.softmax(base, -1) if p_before_k else _softmax_kept(base, keep)
        keep = keep & _top_p_keep(src, top_p, strict)
    if not renorm:
        return torch.softmax(scaled, -1) * keep
    return _softmax_kept(scaled, keep)


@mistake(
    "next_token_distribution",
    "ties at the top-k boundary are broken: keep *every* token whose logit is >= the k-th largest "
    "(compare with the k-th value, don't scatter topk's k indices).",
)
def _ntd_topk_no_ties(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, ties=False)


@mistake(
    "next_token_distribution",
    "top-p stops one token early: keep the token whose probability makes the running sum reach "
    "top_p (keep while the mass *before* a token is < top_p), so the kept set sums to >= top_p.",
)
def _ntd_top_p_strict(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, strict=True)


@mistake(
    "next_token_distribution",
    "top-p is computed on the full distribution: apply it to what top-k left, renormalised.",
)
def _ntd_p_before_k(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, p_before_k=True)


@mistake(
    "next_token_distribution",
    "the top-p set is chosen before dividing by the temperature: divide first, then filter.",
)
def _ntd_temp_last(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, temp_last=True)


@mistake(
    "next_token_distribution",
    "the logits are multiplied by the temperature: divide by it (a high temperature flattens).",
)
def _ntd_multiply(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, multiply=True)


@mistake(
    "next_token_distribution",
    "the kept probabilities are not renormalised: after zeroing the filtered tokens, divide by the "
    "kept mass (or take the softmax over the kept logits) so each row sums to 1.",
)
def _ntd_no_renorm(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, renorm=False)


@mistake(
    "next_token_distribution",
    "greedy (temperature 0) breaks ties towards the last index: take the lowest index (argmax does).",
)
def _ntd_greedy_last(logits, temperature=1.0, top_k=None, top_p=None):
    return _ntd_variant(logits, temperature, top_k, top_p, greedy_last=True)


# ---------------------------------------------------------------- known mistakes: train_step
# Each takes the arguments of train_step; the check replays them on fresh copies.


def _lm_loss(model, tokens, pad_id, *, shift=True, ignore=True, whole=False):
    inp, tgt = (
        (tokens[:, :-1], tokens[:, 1:]) if shift else (tokens, tokens) if whole else (tokens[:, :-1],) * 2
    )
    logits = model(inp)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=pad_id if ignore else -100
    )


@mistake("train_step", "the gradients are never cleared: call optimizer.zero_grad() before backward.")
def _ts_no_zero_grad(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@mistake(
    "train_step",
    "the scheduler is stepped before the optimizer: optimizer.step() uses the current rate, then "
    "scheduler.step() moves to the next one.",
)
def _ts_scheduler_first(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scheduler.step()
    optimizer.step()
    return loss.item()


@mistake(
    "train_step",
    "the gradient is clipped after optimizer.step() (or not at all), so the step used the unclipped "
    "gradient: clip between backward and optimizer.step().",
)
def _ts_clip_after(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scheduler.step()
    return loss.item()


@mistake(
    "train_step",
    "each parameter's gradient is clipped on its own: clip the *global* norm over all parameters "
    "(one call of clip_grad_norm_(model.parameters(), max_grad_norm)).",
)
def _ts_clip_each(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id)
    optimizer.zero_grad()
    loss.backward()
    for p in model.parameters():
        torch.nn.utils.clip_grad_norm_([p], max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@mistake(
    "train_step",
    "pads are scored as targets: pass ignore_index=pad_id to the cross-entropy.",
)
def _ts_no_ignore(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id, ignore=False)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@mistake(
    "train_step",
    "the targets are not shifted: position t must predict tokens[:, t+1] — feed tokens[:, :-1] "
    "and score against tokens[:, 1:].",
)
def _ts_no_shift(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id, shift=False)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@mistake(
    "train_step",
    "the targets are not shifted: position t must predict tokens[:, t+1] — feed tokens[:, :-1] "
    "and score against tokens[:, 1:] (the model learns to copy its input otherwise).",
)
def _ts_no_shift_whole(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id, shift=False, whole=True)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@mistake(
    "train_step",
    "the gradients are cleared after backward, so optimizer.step() has nothing to apply: "
    "zero_grad, then backward, then clip, then step.",
)
def _ts_zero_after_backward(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _lm_loss(model, tokens, pad_id)
    loss.backward()
    optimizer.zero_grad()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


def _expect_value_error(name: str, impl, args: tuple, kwargs: dict, what: str) -> None:
    """The call must raise ValueError (also when the code runs in the secure grader's worker)."""
    try:
        call(name, impl, *args, **kwargs)
    except ExerciseNotAttempted:
        raise
    except CheckFailed as exc:
        msg = str(exc)
        # what the learner's code raised: kept on the failure, or (graded in another process) in the message
        summary = exc.learner_summary or msg.partition("calling it raised ")[2]
        if not summary.startswith("ValueError"):
            raise CheckFailed(
                tr(
                    "{name}: {what} should raise ValueError with a clear message, but {error}",
                    name=name,
                    what=what,
                    error=msg.split(": ", 1)[-1],
                )
            ) from None
        return
    raise CheckFailed(
        tr(
            "{name}: {what} should raise ValueError with a clear message; nothing was raised",
            name=name,
            what=what,
        )
    )


# ---------------------------------------------------------------- checks: rms_norm


@exercise("rms_norm", lesson=10, points=1, title="RMSNorm", reference="tfmcourse.norms:rms_norm")
def check_rms_norm(rms_norm, *, seed: int = 0) -> None:
    name = "rms_norm"
    g = generator(seed)
    D = int(torch.randint(5, 14, (1,), generator=g))
    B, T = int(torch.randint(2, 5, (1,), generator=g)), int(torch.randint(3, 8, (1,), generator=g))
    cases = [
        (N_("x (B, T, D) with the default eps"), randn(B, T, D, g=g, scale=1.5), {}),
        (N_("x with a large mean (shift 4), eps=1e-5"), randn(B, T, D, g=g, shift=4.0), {"eps": 1e-5}),
        (N_("x (D,) a single vector"), randn(D, g=g, scale=2.0), {}),
        (
            N_("tiny x (scale 1e-2) with eps=1e-2, where eps matters"),
            randn(B + 1, D, g=g, scale=1e-2),
            {"eps": 1e-2},
        ),
    ]
    for label, x, kw in cases:
        weight = randn(D, g=g, shift=1.0, scale=0.5)
        x0, w0 = x.clone(), weight.clone()
        got = call(name, rms_norm, x, weight, **kw)
        require(
            torch.equal(x, x0) and torch.equal(weight, w0),
            name,
            tr("it modified its inputs ({label})", label=tr(label)),
        )
        expect_tensor(name, got, tuple(x.shape), what=tr("output ({label})", label=tr(label)))
        eps = kw.get("eps", 1e-6)
        expected = F.rms_norm(x.double(), (D,), weight.double(), eps).float()
        assert_close(
            name,
            got,
            expected,
            case=label,
            mistake_args=(x, weight),
            mistake_kwargs=kw,
            hint="x / sqrt(mean(x², last axis) + eps) * weight",
        )
        assert_close(name, got, norms.rms_norm(x, weight, eps), case=tr(label) + tr(" (vs the reference)"))
    passed(name, "equals torch.nn.functional.rms_norm, eps inside the root, no centring, weight applied")


# ---------------------------------------------------------------- checks: apply_rope


@exercise(
    "apply_rope",
    lesson=10,
    points=2,
    title="Rotary position embedding",
    reference="tfmcourse.positional:apply_rope",
)
def check_apply_rope(apply_rope, *, seed: int = 0) -> None:
    name = "apply_rope"
    g = generator(seed)
    B, H, T = 2, 3, int(torch.randint(4, 8, (1,), generator=g))
    d = 2 * int(torch.randint(3, 9, (1,), generator=g))
    start = int(torch.randint(1, 40, (1,), generator=g))
    cases = [
        (N_("positions 0 … T−1"), torch.arange(T), {}),
        (tr("positions starting at {start}", start=start), torch.arange(start, start + T), {}),
        (N_("positions in any order, base=500"), torch.randperm(60, generator=g)[:T], {"base": 500.0}),
    ]
    for label, pos, kw in cases:
        x = randn(B, H, T, d, g=g)
        x0, pos0 = x.clone(), pos.clone()
        got = call(name, apply_rope, x, pos, **kw)
        require(
            torch.equal(x, x0) and torch.equal(pos, pos0),
            name,
            tr("it modified its inputs ({label})", label=tr(label)),
        )
        expect_tensor(name, got, tuple(x.shape), what=tr("output ({label})", label=tr(label)), axes="B,H,T,d")
        assert_close(
            name,
            got,
            positional.apply_rope(x, pos, **kw),
            case=tr("with {label}, d={d}", label=tr(label), d=d),
            mistake_args=(x, pos),
            mistake_kwargs=kw,
            hint="pair (x[..., 2i], x[..., 2i+1]) at position p turns by θ = p·base^(−2i/d)",
        )
    # the property the lesson relies on: q·k after rotation depends on the offset only
    q, k = randn(d, g=g), randn(d, g=g)
    one = lambda v, p: call(name, apply_rope, v.expand(1, 1, 1, d), torch.tensor([p]))[0, 0, 0]  # noqa: E731
    a, b = one(q, 7) @ one(k, 3), one(q, 24) @ one(k, 20)
    require(
        abs(float(a - b)) < 1e-3 * (1 + abs(float(a))),
        name,
        tr(
            "rope(q, 7)·rope(k, 3) = {float_a:.5g} but rope(q, 24)·rope(k, 20) = {float_b:.5g}: the score should depend only on the offset 4",
            float_a=float(a),
            float_b=float(b),
        ),
    )
    _expect_value_error(
        name,
        apply_rope,
        (randn(1, 1, 3, d + 1, g=g), torch.arange(3)),
        {},
        tr("an odd d={odd_d}", odd_d=d + 1),
    )
    passed(name, "interleaved pairs rotated by p·base^(−2i/d); q·k depends on the offset only; odd d raises")


# ---------------------------------------------------------------- checks: next_token_distribution


def _mid_top_p(probs_row: Tensor, g: torch.Generator) -> float:
    """A top_p half-way between two cumulative probabilities, far from any boundary."""
    cum = probs_row.double().sort(descending=True).values.cumsum(0)
    gaps = [j for j in range(len(cum) - 1) if cum[j + 1] - cum[j] > 2e-3 and cum[j] < 0.995]
    j = gaps[int(torch.randint(len(gaps), (1,), generator=g))]
    return float((cum[j] + cum[j + 1]) / 2)


def _ntd_cases(g: torch.Generator):
    B, V = int(torch.randint(3, 6, (1,), generator=g)), int(torch.randint(9, 16, (1,), generator=g))
    logits = randn(B, V, g=g, scale=2.0)
    yield N_("temperature 1, no filter"), logits, dict(temperature=1.0)
    t = float(torch.empty(1).uniform_(0.3, 0.8, generator=g))
    yield tr("temperature {t:.3f}", t=t), logits, dict(temperature=t)
    yield N_("temperature 2.5"), logits, dict(temperature=2.5)
    tied = logits.clone()
    kth = tied.sort(-1, descending=True).values
    tied[:, :] = torch.where(tied == kth[:, 3:4], kth[:, 2:3], tied)  # the 3rd and 4th largest are equal
    yield (
        N_("top_k=3 with a tie at the boundary (the 3rd and 4th largest logits are equal)"),
        tied,
        dict(top_k=3),
    )
    yield "top_k=1", logits, dict(top_k=1)
    yield tr("top_k={V} (= V) keeps every token", V=V), logits, dict(top_k=V)
    yield tr("top_k={top_k} (> V) keeps every token", top_k=V + 4), logits, dict(top_k=V + 4)
    for b in range(B):  # one threshold per row cannot be passed; use row-wise cases
        p = _mid_top_p(torch.softmax(logits[b], -1), g)
        yield tr("top_p={p:.4f} on row {b}", p=p, b=b), logits[b : b + 1], dict(top_p=p)
    yield N_("top_p=1.0 keeps every token"), logits, dict(top_p=1.0)
    t2 = float(torch.empty(1).uniform_(0.5, 2.0, generator=g))
    kept = decoding.next_token_distribution(logits[:1], t2, 6)
    yield (
        tr("temperature {t2:.3f}, then top_k=6, then top_p on what is left", t2=t2),
        logits[:1],
        dict(temperature=t2, top_k=6, top_p=_mid_top_p(kept[0][kept[0] > 0], g)),
    )
    greedy = logits.clone()
    greedy[0, 1] = greedy[0, 4] = greedy[0].max() + 1.0  # a tie for the maximum
    yield (
        N_("temperature 0 (greedy) with a tie for the largest logit in row 0"),
        greedy,
        dict(temperature=0.0),
    )
    flat = torch.full((2, V), 0.7)
    yield N_("all-equal logits"), flat, dict(temperature=1.0)
    yield N_("all-equal logits with top_k=2 (every token ties)"), flat, dict(top_k=2)
    yield N_("all-equal logits with temperature 0"), flat, dict(temperature=0.0)


@exercise(
    "next_token_distribution",
    lesson=10,
    points=2,
    title="Temperature, top-k and top-p",
    reference="tfmcourse.decoding:next_token_distribution",
)
def check_next_token_distribution(next_token_distribution, *, seed: int = 0) -> None:
    name = "next_token_distribution"
    g = generator(seed)
    for label, logits, kw in _ntd_cases(g):
        before = logits.clone()
        got = call(name, next_token_distribution, logits, **kw)
        require(
            torch.equal(logits, before),
            name,
            tr("it modified the logits in place ({label})", label=tr(label)),
        )
        expect_tensor(
            name, got, tuple(logits.shape), what=tr("probabilities ({label})", label=tr(label)), axes="B,V"
        )
        expected = decoding.next_token_distribution(logits.double(), **kw).float()
        require(
            not torch.isnan(got).any(), name, tr("the probabilities contain NaN ({label})", label=tr(label))
        )
        assert_close(
            name,
            got,
            expected,
            what="probabilities",
            case=tr("for {label}", label=tr(label)),
            mistake_args=(logits,),
            mistake_kwargs=kw,
        )
        require(
            bool((got[expected == 0] == 0).all()),
            name,
            tr("filtered tokens must get exactly 0 probability ({label})", label=tr(label)),
        )
    for bad in (dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5), dict(temperature=-1.0)):
        what = ", ".join(f"{k}={v}" for k, v in bad.items())
        _expect_value_error(name, next_token_distribution, (torch.zeros(1, 5),), bad, what)
    passed(name, "temperature, top-k (ties kept), top-p (on what top-k left), greedy ties, bad arguments")


# ---------------------------------------------------------------- checks: train_step


def _tiny_lm(V: int, D: int, g: torch.Generator) -> torch.nn.Sequential:
    """A small language model of standard layers (so secure grading can rebuild it in the
    learner's process): embedding, a tanh layer, output projection; (B, T) -> (B, T, V)."""
    model = torch.nn.Sequential(
        torch.nn.Embedding(V, D), torch.nn.Linear(D, D), torch.nn.Tanh(), torch.nn.Linear(D, V)
    )
    scales = {"0.weight": 0.5, "1.weight": 0.3, "1.bias": 0.1, "3.weight": 0.5, "3.bias": 0.1}
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scales[k])
    return model


def _ts_setup(seed: int):
    g = generator(seed)
    V, D = int(torch.randint(7, 12, (1,), generator=g)), 6
    pad_id = int(torch.randint(1, V, (1,), generator=g))  # not 0: a hard-coded 0 fails
    model = _tiny_lm(V, D, g)
    B, T = 4, int(torch.randint(6, 10, (1,), generator=g))
    batches = []
    for _ in range(2):
        tokens = torch.randint(0, V, (B, T), generator=g)
        tokens[tokens == pad_id] = (pad_id + 1) % V
        lengths = torch.randint(3, T, (B - 1,), generator=g).tolist() + [T]
        for b, n in enumerate(lengths):
            tokens[b, n:] = pad_id
        batches.append(tokens)
    clip = 0.05 + 0.05 * float(torch.rand(1, generator=g))  # small: clipping is active
    return model, batches, pad_id, clip


def _ts_run(impl, seed: int, name: str | None):
    """Two calls of ``impl`` on a fresh model: returns the losses and the parameters after each call."""
    model, batches, pad_id, clip = _ts_setup(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    # warm-up: the rate is 1/3, then 2/3 of 0.5, changing every step
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 3, end_factor=1.0, total_iters=2)
    losses, params = [], []
    for i, tokens in enumerate(batches):
        kw = {"max_grad_norm": clip} if i == 0 else {}
        before = tokens.clone()
        loss = (
            call(name, impl, model, opt, sched, tokens, pad_id, **kw)
            if name
            else impl(model, opt, sched, tokens, pad_id, **kw)
        )
        if name:
            require(torch.equal(tokens, before), name, "it modified the tokens tensor")
        losses.append(loss)
        params.append({k: p.detach().clone() for k, p in model.named_parameters()})
    return losses, params, clip


def _same_run(a, b) -> bool:
    (la, pa, _), (lb, pb, _) = a, b
    return all(math.isclose(float(x), float(y), rel_tol=1e-4, abs_tol=1e-6) for x, y in zip(la, lb)) and all(
        torch.allclose(pa[i][k], pb[i][k], rtol=1e-4, atol=1e-6) for i in range(2) for k in pa[i]
    )


@exercise(
    "train_step",
    lesson=10,
    points=2,
    title="One training step of a language model",
    reference="tfmcourse.train:train_step",
)
def check_train_step(train_step, *, seed: int = 0) -> None:
    name = "train_step"
    got = _ts_run(train_step, seed, name)
    want = _ts_run(train_module.train_step, seed, None)
    for loss in got[0]:
        if not isinstance(loss, float):
            raise CheckFailed(
                tr(
                    "{name}: should return the loss as a Python float (loss.item()), got {loss_type}",
                    name=name,
                    loss_type=type(loss).__name__,
                )
            )
    if _same_run(got, want):
        passed(
            name,
            "same parameters as the reference after one and two steps (SGD with momentum, "
            "a warm-up scheduler, active clipping, pads not 0)",
        )
        return
    found = None
    for m in MISTAKES.get(name, []):
        try:
            if _same_run(got, _ts_run(m.impl, seed, None)):
                found = tr(m.description)
                break
        except Exception:
            continue
    step = (
        0
        if not all(torch.allclose(got[1][0][k], want[1][0][k], rtol=1e-4, atol=1e-6) for k in want[1][0])
        else 1
    )
    if not math.isclose(got[0][step], want[0][step], rel_tol=1e-4, abs_tol=1e-6):
        what = tr(
            "the returned loss of call {call_number} is {loss:.6g}, expected {expected:.6g}",
            call_number=step + 1,
            loss=got[0][step],
            expected=want[0][step],
        )
    else:
        k = max(want[1][step], key=lambda k: float((got[1][step][k] - want[1][step][k]).abs().max()))
        diff = float((got[1][step][k] - want[1][step][k]).abs().max())
        what = tr(
            "after call {call_number} the parameter {k!r} differs from the reference step by up to {diff:.3g}",
            call_number=step + 1,
            k=k,
            diff=diff,
        )
    raise CheckFailed(
        tr(
            "{name}: {what} (same model, optimizer, scheduler and tokens; max_grad_norm={max_norm:.3f} on the first call, the default on the second).",
            name=name,
            what=what,
            max_norm=got[2],
        )
        + (
            tr("\n  This matches a known mistake: {found}", found=found)
            if found
            else tr(
                "\n  Hint: shift, cross-entropy ignoring pad_id, zero_grad, backward, clip, optimizer.step(), "
                "scheduler.step()."
            )
        )
    )
