"""Checks for lesson 09: ``noam_lr``, ``teacher_forcing_batch``, ``label_smoothed_loss``, ``greedy_decode``."""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from tfmcourse import decoding, schedule
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
from tfmcourse.checks._models import scripted_case

# ---------------------------------------------------------------- known mistakes: noam_lr


@mistake(
    "noam_lr",
    "the d_model^-0.5 term is missing: the rate must be scaled by 1/sqrt(d_model) "
    "(wider models take smaller steps).",
)
def _noam_no_d_model(step, d_model, warmup_steps, factor=1.0):
    return factor * min(step**-0.5, step * warmup_steps**-1.5)


@mistake(
    "noam_lr",
    "max is used where the formula has min: min(step^-0.5, step·warmup^-1.5) picks the "
    "linear warm-up before the peak and the 1/sqrt(step) decay after it.",
)
def _noam_max(step, d_model, warmup_steps, factor=1.0):
    return factor * d_model**-0.5 * max(step**-0.5, step * warmup_steps**-1.5)


@mistake(
    "noam_lr",
    "this is the mistyped formula d_model^-0.5 · min(step^-0.5 · warmup^-1.5) (a product "
    "inside min, as in some notes): it has no warm-up at all. min takes two arguments: "
    "min(step^-0.5, step · warmup^-1.5).",
)
def _noam_mistyped(step, d_model, warmup_steps, factor=1.0):
    return factor * d_model**-0.5 * step**-0.5 * warmup_steps**-1.5


@mistake(
    "noam_lr",
    "the warm-up branch uses warmup^-0.5 instead of warmup^-1.5: the two branches must "
    "meet at step = warmup (step·warmup^-1.5 = warmup^-0.5 there).",
)
def _noam_warmup_exponent(step, d_model, warmup_steps, factor=1.0):
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-0.5)


@mistake("noam_lr", "d_model is raised to +0.5 instead of -0.5: divide by sqrt(d_model), don't multiply.")
def _noam_d_model_sign(step, d_model, warmup_steps, factor=1.0):
    return factor * d_model**0.5 * min(step**-0.5, step * warmup_steps**-1.5)


@mistake("noam_lr", "the factor argument is ignored: multiply the whole rate by factor.")
def _noam_no_factor(step, d_model, warmup_steps, factor=1.0):
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


@mistake(
    "noam_lr",
    "it crashes at step 0 (0 ** -0.5 divides by zero), but LambdaLR calls it with step 0 "
    "when the scheduler is created: treat step 0 as step 1 (step = max(step, 1)).",
)
def _noam_crash_at_zero(step, d_model, warmup_steps, factor=1.0):
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


# ---------------------------------------------------------------- known mistakes: teacher_forcing_batch


@mistake(
    "teacher_forcing_batch",
    "the targets are not shifted: the labels at position t must be the "
    "*next* token, tgt[:, t+1]; return (tgt[:, :-1], tgt[:, 1:]).",
)
def _tf_not_shifted(tgt):
    return tgt[:, :-1], tgt[:, :-1]


@mistake(
    "teacher_forcing_batch",
    "the targets are not shifted: the labels at position t must be the "
    "*next* token, tgt[:, t+1]; return (tgt[:, :-1], tgt[:, 1:]).",
)
def _tf_not_shifted_full(tgt):
    return tgt, tgt


@mistake(
    "teacher_forcing_batch",
    "the shift goes the wrong way (or the pair is returned in the wrong "
    "order): the decoder input keeps BOS and drops the last token, tgt[:, :-1]; the labels drop "
    "BOS, tgt[:, 1:].",
)
def _tf_wrong_way(tgt):
    return tgt[:, 1:], tgt[:, :-1]


@mistake(
    "teacher_forcing_batch",
    "the decoder input lost BOS: it must be tgt[:, :-1] (starting with BOS), and the labels tgt[:, 1:].",
)
def _tf_input_no_bos(tgt):
    return tgt[:, 1:], tgt[:, 1:]


# ---------------------------------------------------------------- known mistakes: label_smoothed_loss


def _ls_parts(logits, target, ignore_index):
    logp = torch.log_softmax(logits.double(), -1)
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    nll = -logp.gather(-1, safe[:, None]).squeeze(-1)
    return logp, keep, nll


@mistake(
    "label_smoothed_loss",
    "the smoothing mass is spread over the V−1 wrong classes only; "
    "F.cross_entropy spreads ε over all V classes (the true class gets 1−ε+ε/V).",
)
def _ls_over_v_minus_1(logits, target, smoothing, ignore_index):
    logp, keep, nll = _ls_parts(logits, target, ignore_index)
    V = logits.shape[-1]
    others = -(logp.sum(-1) - (-nll))
    per = (1 - smoothing) * nll + smoothing / (V - 1) * others
    return (per[keep].sum() / keep.sum()).to(logits.dtype)


@mistake(
    "label_smoothed_loss",
    "ignored labels are counted in the mean: divide by the number of non-ignored targets, not by N.",
)
def _ls_ignored_counted(logits, target, smoothing, ignore_index):
    logp, keep, nll = _ls_parts(logits, target, ignore_index)
    per = (1 - smoothing) * nll + smoothing * (-logp.mean(-1))
    return (per.masked_fill(~keep, 0.0).sum() / len(target)).to(logits.dtype)


@mistake(
    "label_smoothed_loss",
    "ignored labels are counted: rows whose target is ignore_index must "
    "contribute nothing to the loss (mask them out before averaging).",
)
def _ls_ignored_included(logits, target, smoothing, ignore_index):
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


@mistake(
    "label_smoothed_loss",
    "the uniform part is summed over the V classes instead of averaged: "
    "the smoothed target puts ε/V (not ε) on each class.",
)
def _ls_uniform_summed(logits, target, smoothing, ignore_index):
    logp, keep, nll = _ls_parts(logits, target, ignore_index)
    per = (1 - smoothing) * nll + smoothing * (-logp.sum(-1))
    return (per[keep].sum() / keep.sum()).to(logits.dtype)


@mistake(
    "label_smoothed_loss", "ε and 1−ε are swapped: the true class keeps weight 1−ε, the uniform part gets ε."
)
def _ls_swapped(logits, target, smoothing, ignore_index):
    logp, keep, nll = _ls_parts(logits, target, ignore_index)
    per = smoothing * nll + (1 - smoothing) * (-logp.mean(-1))
    return (per[keep].sum() / keep.sum()).to(logits.dtype)


def _smoothed_target_v_minus_2(logits, target, smoothing, ignore_index):
    """ε/(V−2) on every class but the true one and the pad column (when ignore_index is a class)."""
    V = logits.shape[-1]
    dist = torch.full(logits.shape, smoothing / (V - 2), dtype=torch.float64)
    dist.scatter_(1, target.clamp(0, V - 1)[:, None], 1 - smoothing)
    if 0 <= ignore_index < V:
        dist[:, ignore_index] = 0.0
    return dist


@mistake(
    "label_smoothed_loss",
    "this is label smoothing written as a KL divergence with ε spread over V−2 classes and the pad "
    "column zeroed (a popular tutorial's version). It trains alike, but it is another convention: "
    "the KL is the cross-entropy minus the smoothed target's entropy (a constant), and its target "
    "differs. The exercise asks for the value of F.cross_entropy(label_smoothing=ε), the one "
    "PyTorch reports and the paper's loss: a cross-entropy against 1−ε+ε/V on the true class and "
    "ε/V on every class, pad included.",
)
def _ls_kl_v_minus_2(logits, target, smoothing, ignore_index):
    logp, keep, _ = _ls_parts(logits, target, ignore_index)
    dist = _smoothed_target_v_minus_2(logits, target, smoothing, ignore_index)
    plogp = torch.where(dist > 0, dist * dist.clamp_min(1e-300).log(), torch.zeros_like(dist))
    per = (plogp - dist * logp).sum(-1)
    return (per[keep].sum() / keep.sum()).to(logits.dtype)


@mistake(
    "label_smoothed_loss",
    "ε is spread over V−2 classes with the pad column zeroed: F.cross_entropy(label_smoothing=ε), "
    "which the exercise asks for, puts ε/V on every one of the V classes (pad included) and "
    "1−ε+ε/V on the true class.",
)
def _ls_ce_v_minus_2(logits, target, smoothing, ignore_index):
    logp, keep, _ = _ls_parts(logits, target, ignore_index)
    dist = _smoothed_target_v_minus_2(logits, target, smoothing, ignore_index)
    per = -(dist * logp).sum(-1)
    return (per[keep].sum() / keep.sum()).to(logits.dtype)


@mistake("label_smoothed_loss", "the smoothing is ignored: this is the plain cross-entropy.")
def _ls_no_smoothing(logits, target, smoothing, ignore_index):
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


@mistake("label_smoothed_loss", "the loss is summed over the rows instead of averaged (reduction='mean').")
def _ls_summed(logits, target, smoothing, ignore_index):
    return F.cross_entropy(
        logits, target, ignore_index=ignore_index, label_smoothing=smoothing, reduction="sum"
    )


# ---------------------------------------------------------------- known mistakes: greedy_decode


def _greedy_loop(
    model,
    src,
    max_len,
    bos_id,
    eos_id,
    pad_id,
    *,
    position=-1,
    pad=True,
    keep_bos=False,
    stop_any=False,
    last_only=False,
):
    memory = model.encode(src)
    B = src.shape[0]
    ys = torch.full((B, 1), bos_id, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for _ in range(max_len):
        logits = model.decode(ys[:, -1:] if last_only else ys, memory, src)
        nxt = logits[:, position].argmax(-1)
        if pad:
            nxt = nxt.masked_fill(done, pad_id)
        ys = torch.cat([ys, nxt[:, None]], 1)
        done = done | (nxt == eos_id)
        if (stop_any and bool(done.any())) or bool(done.all()):
            break
    return ys if keep_bos else ys[:, 1:]


@mistake(
    "greedy_decode",
    "the output keeps BOS: return the generated tokens only, without the BOS "
    "every row started from (ys[:, 1:]).",
)
def _greedy_keeps_bos(model, src, max_len, bos_id, eos_id, pad_id):
    return _greedy_loop(model, src, max_len, bos_id, eos_id, pad_id, keep_bos=True)


@mistake(
    "greedy_decode",
    "rows are not padded after EOS: once a row has produced EOS, every later token "
    "of that row must be pad_id (keep a `done` flag per row).",
)
def _greedy_no_pad(model, src, max_len, bos_id, eos_id, pad_id):
    return _greedy_loop(model, src, max_len, bos_id, eos_id, pad_id, pad=False)


@mistake(
    "greedy_decode",
    "the next token is read from the wrong position's logits: the prediction for "
    "the next token is at the LAST position, logits[:, -1], not logits[:, 0].",
)
def _greedy_first_position(model, src, max_len, bos_id, eos_id, pad_id):
    return _greedy_loop(model, src, max_len, bos_id, eos_id, pad_id, position=0)


@mistake(
    "greedy_decode",
    "the decoder is given only the last token: pass the whole prefix generated so "
    "far (BOS and every token since) to model.decode at each step.",
)
def _greedy_last_only(model, src, max_len, bos_id, eos_id, pad_id):
    return _greedy_loop(model, src, max_len, bos_id, eos_id, pad_id, last_only=True)


@mistake(
    "greedy_decode",
    "decoding stopped as soon as the first row produced EOS: stop only when every "
    "row has (or after max_len tokens).",
)
def _greedy_stop_any(model, src, max_len, bos_id, eos_id, pad_id):
    return _greedy_loop(model, src, max_len, bos_id, eos_id, pad_id, stop_any=True)


@mistake(
    "greedy_decode",
    "the special ids are hard-coded: use the bos_id, eos_id and pad_id arguments "
    "(a vocabulary may number them differently).",
)
def _greedy_hardcoded_ids(model, src, max_len, bos_id, eos_id, pad_id):
    return _greedy_loop(model, src, max_len, 1, 2, 0)


# ---------------------------------------------------------------- helpers


def _scalar(name: str, value, what: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise CheckFailed(f"{name}: {what} should be a number (float), got {type(value).__name__}")


def _matching_mistake(name: str, same) -> str | None:
    """The first registered mistake of ``name`` for which ``same(mistake_impl)`` is true."""
    for m in MISTAKES.get(name, []):
        try:
            if same(m.impl):
                return m.description
        except Exception:
            continue
    return None


def _with_mistake(message: str, found: str | None) -> str:
    return message + (f"\n  This matches a known mistake: {found}" if found else "")


# ---------------------------------------------------------------- checks


@exercise(
    "noam_lr", lesson=9, points=1, title="The Noam warm-up schedule", reference="tfmcourse.schedule:noam_lr"
)
def check_noam_lr(noam_lr, *, seed: int = 0) -> None:
    name = "noam_lr"
    g = generator(seed)
    d_model = int(torch.randint(3, 12, (1,), generator=g)) * 8  # 24 … 88
    warmup = int(torch.randint(7, 30, (1,), generator=g))
    factor = 2.0 + float(torch.rand(1, generator=g))
    steps = [warmup, 1, 2, warmup // 2, warmup - 1, warmup + 1, 2 * warmup, 10 * warmup, 37 * warmup + 3]
    got = [
        _scalar(name, call(name, noam_lr, s, d_model, warmup, factor=factor), f"noam_lr({s}, …)")
        for s in steps
    ]
    want = [schedule.noam_lr(s, d_model, warmup, factor) for s in steps]
    for s, a, b in zip(steps, got, want):
        if not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-12):
            found = _matching_mistake(
                name,
                lambda m: all(
                    math.isclose(a2, m(s2, d_model, warmup, factor), rel_tol=1e-4, abs_tol=1e-12)
                    for s2, a2 in zip(steps, got)
                ),
            )
            table = ", ".join(f"{s2}: {b2:.4g}" for s2, b2 in zip(steps[:5], want[:5]))
            raise CheckFailed(
                _with_mistake(
                    f"{name}: wrong rate at step {s} (d_model={d_model}, warmup_steps={warmup}, "
                    f"factor={factor:.3f}): expected {b:.6g}, got {a:.6g}.\n"
                    f"  expected at steps {table}, …",
                    found,
                )
            )
    default = _scalar(name, call(name, noam_lr, 3 * warmup, d_model, warmup), "the rate")
    want_default = schedule.noam_lr(3 * warmup, d_model, warmup)
    require(
        math.isclose(default, want_default, rel_tol=1e-4),
        name,
        f"with the default factor (1.0) at step {3 * warmup}: expected {want_default:.6g}, got {default:.6g}",
    )
    # step 0: LambdaLR evaluates the multiplier at step 0 when it is created
    try:
        zero = call(name, noam_lr, 0, d_model, warmup, factor=factor)
    except CheckFailed as exc:
        raise CheckFailed(
            f"{name}: it crashes at step 0, but LambdaLR calls it with step 0 when the "
            f"scheduler is created (0 ** -0.5 divides by zero). Treat step 0 as step 1 "
            f"(step = max(step, 1)).\n  ({exc})"
        ) from None
    zero = _scalar(name, zero, "noam_lr(0, …)")
    require(
        math.isfinite(zero),
        name,
        f"at step 0 it returns {zero}, not a finite number: LambdaLR needs a "
        "finite multiplier at step 0 (treat step 0 as step 1)",
    )
    require(
        0.0 <= zero <= want[1] * (1 + 1e-4),
        name,
        f"at step 0 it returns {zero:.4g}; expected 0 or the value of step 1 ({want[1]:.4g})",
    )
    peak = max(range(len(steps)), key=lambda i: got[i])
    require(steps[peak] == warmup, name, f"the schedule should peak at warmup_steps={warmup}")
    passed(
        name,
        f"matches factor·d_model^-0.5·min(step^-0.5, step·warmup^-1.5) at {len(steps)} steps, "
        "peaks at warmup_steps, finite at step 0",
    )


def _tf_case(g: torch.Generator, B: int, T: int, lengths: list[int], bos: int, eos: int, pad: int) -> Tensor:
    tgt = torch.randint(5, 40, (B, T), generator=g)
    tgt[:, 0] = bos
    for b, n in enumerate(lengths):  # n content tokens, then EOS, then pads
        tgt[b, 1 + n] = eos
        tgt[b, 2 + n :] = pad
    return tgt


@exercise(
    "teacher_forcing_batch",
    lesson=9,
    points=1,
    title="Teacher forcing: decoder input and labels",
    reference="tfmcourse.decoding:teacher_forcing_batch",
)
def check_teacher_forcing_batch(teacher_forcing_batch, *, seed: int = 0) -> None:
    name = "teacher_forcing_batch"
    g = generator(seed)
    cases = [
        ("B=3, T=8 with EOS and padding", _tf_case(g, 3, 8, [6, 3, 1], bos=1, eos=2, pad=0)),
        ("B=2, T=2 (just BOS and EOS)", _tf_case(g, 2, 2, [0, 0], bos=3, eos=4, pad=0)),
    ]
    for label, tgt in cases:
        before = tgt.clone()
        got = call(name, teacher_forcing_batch, tgt)
        require(torch.equal(tgt, before), name, f"it modified tgt in place ({label}); slice it instead")
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise CheckFailed(
                f"{name}: should return a pair (decoder_input, labels), got {type(got).__name__}"
            )
        inp, lab = got
        want_inp, want_lab = decoding.teacher_forcing_batch(tgt)

        def same(m, inp=inp, lab=lab, tgt=tgt):
            a, b = m(tgt)
            return (
                isinstance(inp, Tensor)
                and isinstance(lab, Tensor)
                and inp.shape == a.shape
                and lab.shape == b.shape
                and torch.equal(inp, a)
                and torch.equal(lab, b)
            )

        ok = (
            isinstance(inp, Tensor)
            and isinstance(lab, Tensor)
            and inp.shape == want_inp.shape
            and lab.shape == want_lab.shape
            and torch.equal(inp, want_inp)
            and torch.equal(lab, want_lab)
        )
        if not ok:
            found = _matching_mistake(name, same)
            if found:
                raise CheckFailed(
                    _with_mistake(
                        f"{name}: wrong decoder input / labels ({label}).\n"
                        f"  tgt[0]            {tgt[0].tolist()}\n"
                        f"  expected input[0] {want_inp[0].tolist()}\n"
                        f"  expected labels[0] {want_lab[0].tolist()}",
                        found,
                    )
                )
        B, T = tgt.shape
        expect_tensor(name, inp, (B, T - 1), dtype=None, what=f"decoder input ({label})", axes="B,T-1")
        expect_tensor(name, lab, (B, T - 1), dtype=None, what=f"labels ({label})", axes="B,T-1")
        require(
            not inp.is_floating_point() and not lab.is_floating_point(),
            name,
            "the decoder input and labels must stay integer token ids",
        )
        assert_close(
            name,
            inp,
            want_inp,
            what="decoder input",
            case=f"({label})",
            hint="the decoder reads BOS and every token but the last: tgt[:, :-1]",
        )
        assert_close(
            name,
            lab,
            want_lab,
            what="labels",
            case=f"({label})",
            hint="position t predicts the next token: labels = tgt[:, 1:]",
        )
    passed(name, "decoder input = tgt[:, :-1] (starts with BOS), labels = tgt[:, 1:] (the next tokens)")


def _ls_cases(g: torch.Generator):
    N, V = 11, 7
    logits = randn(N, V, g=g, scale=2.0, shift=0.5)
    target = torch.randint(1, V, (N,), generator=g)
    target[[2, 5, 9]] = 0  # the pad class, a valid index
    yield "smoothing 0.1, ignore_index 0 (3 of 11 rows ignored)", logits, target, 0.1, 0
    logits = randn(9, 5, g=g, scale=3.0)
    target = torch.randint(0, 5, (9,), generator=g)
    target[[0, 4]] = -100
    yield "smoothing 0.25, ignore_index -100", logits, target, 0.25, -100
    logits = randn(6, 13, g=g, scale=1.5, shift=-1.0)
    target = torch.randint(0, 13, (6,), generator=g)
    target[target == 3] = 4
    yield "smoothing 0.0, ignore_index 3 (none ignored)", logits, target, 0.0, 3


@exercise(
    "label_smoothed_loss",
    lesson=9,
    points=1,
    title="Label-smoothed cross-entropy",
    reference="tfmcourse.decoding:label_smoothed_loss",
)
def check_label_smoothed_loss(label_smoothed_loss, *, seed: int = 0) -> None:
    name = "label_smoothed_loss"
    g = generator(seed)
    for label, logits, target, eps, ignore in _ls_cases(g):
        before = (logits.clone(), target.clone())
        try:
            got = call(name, label_smoothed_loss, logits, target, eps, ignore)
        except ExerciseNotAttempted:
            raise
        except CheckFailed as exc:
            if not 0 <= ignore < logits.shape[-1]:
                raise CheckFailed(
                    f"{exc}\n  The target holds ignore_index = {ignore} on the ignored rows ({label}), which "
                    f"is not a class: gathering or indexing the log-probabilities at the target (or "
                    f"one_hot of it) before leaving those rows out fails. Select the kept rows first, "
                    f"or replace their targets (target.masked_fill(target == ignore_index, 0)) and "
                    f"zero their loss afterwards."
                ) from None
            raise
        require(
            torch.equal(logits, before[0]) and torch.equal(target, before[1]),
            name,
            f"it modified its inputs in place ({label})",
        )
        if isinstance(got, Tensor) and got.numel() == 1 and got.dim() > 0:
            raise CheckFailed(
                f"{name}: should return a scalar (shape ()), got shape {tuple(got.shape)}: "
                "use .mean() / .sum() without keepdim, or .squeeze()"
            )
        expect_tensor(name, got, (), what=f"loss ({label})")
        want = decoding.label_smoothed_loss(logits, target, eps, ignore)
        assert_close(
            name, got, want, what="loss", case=f"({label})", mistake_args=(logits, target, eps, ignore)
        )
        builtin = F.cross_entropy(logits, target, label_smoothing=eps, ignore_index=ignore)
        assert_close(name, got, builtin, what="loss (vs F.cross_entropy)", case=f"({label})")
    passed(
        name,
        "equals F.cross_entropy(label_smoothing=ε, ignore_index=…) with ε spread over all V "
        "classes and ignored rows left out of the mean",
    )


def _greedy_cases(seed: int):
    g = generator(seed)
    # (label, ends per row (None = never emits EOS), max_len, V, bos, eos, pad)
    yield (
        "4 rows emitting EOS as token 3, 1, 8 (the last allowed) and never, max_len 9",
        [3, 1, 8, None],
        9,
        11,
        1,
        2,
        0,
    )
    yield (
        "3 rows that all finish early (EOS as token 2, 0 and 4), max_len 10, ids bos=7 eos=4 pad=9",
        [2, 0, 4],
        10,
        12,
        7,
        4,
        9,
    )
    yield ("2 rows, neither emits EOS, max_len 5", [None, None], 5, 9, 1, 2, 0)
    for label, ends, max_len, V, bos, eos, pad in [(f"random plan (seed {seed})", None, 8, 10, 2, 5, 3)]:
        ends = [
            int(e) if e < max_len else None for e in torch.randint(0, max_len + 3, (4,), generator=g).tolist()
        ]
        yield label + f": EOS at {ends}", ends, max_len, V, bos, eos, pad


def _compare_prefix(a: Tensor, b: Tensor, need: int) -> bool:
    """``a`` and ``b`` agree on their common width, which is at least ``need`` (the rest is padding)."""
    if a.shape == b.shape and torch.equal(a.long(), b.long()):
        return True
    w = min(a.shape[1], b.shape[1])
    return a.shape[0] == b.shape[0] and w >= need and torch.equal(a[:, :w].long(), b[:, :w].long())


@exercise(
    "greedy_decode", lesson=9, points=2, title="Greedy decoding", reference="tfmcourse.decoding:greedy_decode"
)
def check_greedy_decode(greedy_decode, *, seed: int = 0) -> None:
    name = "greedy_decode"
    g = generator(seed)
    for label, ends, max_len, V, bos, eos, pad in _greedy_cases(seed):
        model, src = scripted_case(
            g, ends=ends, max_len=max_len, vocab_size=V, bos_id=bos, eos_id=eos, pad_id=pad
        )
        model.eval()
        src_before = src.clone()
        # the expected tokens are computed before the learner's code can touch the model
        want = decoding.greedy_decode(model, src, max_len, bos, eos, pad)  # may stop early
        got = call(name, greedy_decode, model, src, max_len, bos, eos, pad)
        require(torch.equal(src, src_before), name, f"it modified src in place ({label})")
        if not isinstance(got, Tensor):
            raise CheckFailed(f"{name}: should return a tensor of token ids, got {type(got).__name__}")
        B = src.shape[0]
        full = torch.full((B, max_len), pad, dtype=torch.long)
        full[:, : want.shape[1]] = want  # the same, run to max_len
        need = want.shape[1]  # every row has its EOS (or max_len tokens) within this width

        def fail(message: str) -> None:
            found = None
            if isinstance(got, Tensor) and got.dim() == 2 and not got.is_floating_point():
                found = _matching_mistake(
                    name,
                    lambda m: (
                        _compare_prefix(got, m(model, src, max_len, bos, eos, pad), need)
                        and not _compare_prefix(got, full, need)
                    ),
                )
            raise CheckFailed(
                _with_mistake(
                    f"{name}: {message} ({label}).\n"
                    f"  expected (padded to max_len) row 0 {full[0].tolist()}\n"
                    f"  got                          row 0 "
                    f"{got[0].tolist() if got.dim() == 2 else got.tolist()}",
                    found,
                )
            )

        if got.dim() != 2 or got.shape[0] != B:
            fail(f"the output has shape {tuple(got.shape)}, expected (B={B}, L) with L <= max_len={max_len}")
        if got.is_floating_point() or got.dtype == torch.bool:
            fail(f"the output should hold integer token ids (torch.long), got dtype {got.dtype}")
        W = got.shape[1]
        if max_len < W:
            fail(f"the output has {W} columns, more than max_len={max_len}")
        if need > W:
            fail(
                f"the output has only {W} columns, but a row without EOS in its first {W} tokens must "
                f"run on (to max_len={max_len})"
            )
        if not torch.equal(got.long(), full[:, :W]):
            bad = (got.long() != full[:, :W]).any(dim=1).nonzero()[0, 0].item()
            fail(f"row {bad} differs: got {got[bad].tolist()}, expected {full[bad, :W].tolist()}")
    passed(
        name,
        "no BOS in the output, each row stops at its own EOS and is padded after it, rows "
        "without EOS run to max_len; tested on scripted models with planned EOS positions",
    )
