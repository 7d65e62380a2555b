"""Implementations of the lesson 09 exercises, right and wrong, written independently."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from tests.mutants import correct, wrong

# ---- noam_lr


@correct("noam_lr")
def noam_clamped(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return factor / math.sqrt(d_model) * min(1 / math.sqrt(s), s / warmup_steps**1.5)


@correct("noam_lr")
def noam_zero_at_start(step, d_model, warmup_steps, factor=1.0):
    # the limit of the formula at step 0 is 0 (the warm-up branch): also fine for LambdaLR
    if step == 0:
        return 0.0
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


@correct("noam_lr")
def noam_branches_numpy(step, d_model, warmup_steps, factor=1.0):
    s = np.float64(max(step, 1))
    rate = s / warmup_steps**1.5 if s < warmup_steps else s**-0.5
    return float(factor * rate / np.sqrt(d_model))


@wrong("noam_lr", "d_model^-0.5 term is missing")
def noam_no_d_model(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return factor * min(s**-0.5, s * warmup_steps**-1.5)


@wrong("noam_lr", "max is used")
def noam_max(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return factor * d_model**-0.5 * max(s**-0.5, s * warmup_steps**-1.5)


@wrong("noam_lr", "mistyped formula")
def noam_mistyped(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return factor * d_model**-0.5 * min([s**-0.5 * warmup_steps**-1.5])


@wrong("noam_lr", "crashes at step 0")
def noam_crash(step, d_model, warmup_steps, factor=1.0):
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


@wrong("noam_lr", "not a finite number")
def noam_inf_at_zero(step, d_model, warmup_steps, factor=1.0):
    inv_sqrt = math.inf if step == 0 else step**-0.5
    return (
        factor * d_model**-0.5 * max(inv_sqrt, 0.0)
        if step == 0
        else factor * d_model**-0.5 * min(inv_sqrt, step * warmup_steps**-1.5)
    )


@wrong("noam_lr", "warmup^-0.5 instead of warmup^-1.5")
def noam_warmup_power(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return factor * d_model**-0.5 * min(s**-0.5, s * warmup_steps**-0.5)


@wrong("noam_lr", "factor argument is ignored")
def noam_no_factor(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return d_model**-0.5 * min(s**-0.5, s * warmup_steps**-1.5)


@wrong("noam_lr", "should be a number")
def noam_returns_list(step, d_model, warmup_steps, factor=1.0):
    s = max(step, 1)
    return [factor * d_model**-0.5 * min(s**-0.5, s * warmup_steps**-1.5)]


# ---- teacher_forcing_batch


@correct("teacher_forcing_batch")
def tf_narrow(tgt):
    T = tgt.size(1)
    return tgt.narrow(1, 0, T - 1).clone(), tgt.narrow(1, 1, T - 1).clone()


@correct("teacher_forcing_batch")
def tf_loop(tgt):
    B, T = tgt.shape
    inp = torch.empty(B, T - 1, dtype=tgt.dtype)
    lab = torch.empty(B, T - 1, dtype=tgt.dtype)
    for t in range(T - 1):
        inp[:, t] = tgt[:, t]
        lab[:, t] = tgt[:, t + 1]
    return inp, lab


@wrong("teacher_forcing_batch", "not shifted")
def tf_same(tgt):
    return tgt[:, :-1], tgt[:, :-1].clone()


@wrong("teacher_forcing_batch", "not shifted")
def tf_identity(tgt):
    return tgt, tgt


@wrong("teacher_forcing_batch", "wrong way")
def tf_wrong_direction(tgt):
    return tgt[:, 1:], tgt[:, :-1]


@wrong("teacher_forcing_batch", "lost BOS")
def tf_no_bos(tgt):
    return tgt[:, 1:], tgt[:, 1:]


@wrong("teacher_forcing_batch", "shape")
def tf_drops_two(tgt):
    return tgt[:, :-2], tgt[:, 2:]


@wrong("teacher_forcing_batch", "pair")
def tf_stacked(tgt):
    return torch.stack([tgt[:, :-1], tgt[:, 1:]])


@wrong("teacher_forcing_batch", "integer")
def tf_float(tgt):
    return tgt[:, :-1].float(), tgt[:, 1:].float()


@wrong("teacher_forcing_batch", "in place")
def tf_in_place(tgt):
    lab = tgt[:, 1:].clone()
    tgt[:, -1] = 0
    return tgt[:, :-1], lab


# ---- label_smoothed_loss


@correct("label_smoothed_loss")
def ls_explicit_distribution(logits, target, smoothing, ignore_index):
    N, V = logits.shape
    keep = target != ignore_index
    t = target[keep]
    q = torch.full((len(t), V), smoothing / V, dtype=torch.float64)
    q[torch.arange(len(t)), t] += 1 - smoothing
    logp = F.log_softmax(logits[keep].double(), dim=1)
    return (-(q * logp).sum(1).mean()).to(logits.dtype)


@correct("label_smoothed_loss")
def ls_manual_logsumexp(logits, target, smoothing, ignore_index):
    total, count = 0.0, 0
    for i in range(logits.shape[0]):
        if int(target[i]) == ignore_index:
            continue
        row = logits[i].double()
        lse = torch.logsumexp(row, 0)
        nll = lse - row[int(target[i])]
        smooth = lse - row.mean()
        total = total + (1 - smoothing) * nll + smoothing * smooth
        count += 1
    return (total / count).float()


@wrong("label_smoothed_loss", "KL divergence")
def ls_kl_div_tutorial(logits, target, smoothing, ignore_index):
    """KL divergence against ε/(V−2) with the pad column and pad rows zeroed, per real token."""
    N, V = logits.shape
    true_dist = torch.full_like(logits, smoothing / (V - 2))
    true_dist.scatter_(1, target.clamp(0, V - 1).unsqueeze(1), 1.0 - smoothing)
    if 0 <= ignore_index < V:
        true_dist[:, ignore_index] = 0
    keep = target != ignore_index
    true_dist = true_dist * keep[:, None]
    kl = F.kl_div(F.log_softmax(logits, dim=-1), true_dist, reduction="sum")
    return kl / keep.sum()


@wrong("label_smoothed_loss", "V−2")
def ls_v_minus_2_cross_entropy(logits, target, smoothing, ignore_index):
    N, V = logits.shape
    keep = target != ignore_index
    q = torch.full((N, V), smoothing / (V - 2))
    q[torch.arange(N), target.clamp(0, V - 1)] = 1 - smoothing
    if 0 <= ignore_index < V:
        q[:, ignore_index] = 0
    per = -(q * F.log_softmax(logits, -1)).sum(-1)
    return per[keep].mean()


@wrong("label_smoothed_loss", "is not a class")
def ls_gather_before_masking(logits, target, smoothing, ignore_index):
    """Gathers the true class's log-probability for every row, ignored ones included."""
    logp = F.log_softmax(logits, -1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    per = (1 - smoothing) * nll - smoothing * logp.mean(-1)
    keep = target != ignore_index
    return per[keep].mean()


@wrong("label_smoothed_loss", "V−1")
def ls_v_minus_1(logits, target, smoothing, ignore_index):
    N, V = logits.shape
    keep = target != ignore_index
    t = target[keep]
    q = torch.full((len(t), V), smoothing / (V - 1))
    q[torch.arange(len(t)), t] = 1 - smoothing
    return -(q * F.log_softmax(logits[keep], 1)).sum(1).mean()


@wrong("label_smoothed_loss", "counted in the mean")
def ls_divide_by_n(logits, target, smoothing, ignore_index):
    return F.cross_entropy(
        logits, target, ignore_index=ignore_index, label_smoothing=smoothing, reduction="sum"
    ) / len(target)


@wrong("label_smoothed_loss", "ignored labels are counted")
def ls_no_ignore(logits, target, smoothing, ignore_index):
    return F.cross_entropy(logits, target.clamp_min(0), label_smoothing=smoothing)


@wrong("label_smoothed_loss", "summed over the V classes")
def ls_uniform_sum(logits, target, smoothing, ignore_index):
    keep = target != ignore_index
    logp = F.log_softmax(logits[keep], 1)
    nll = -logp.gather(1, target[keep][:, None]).squeeze(1)
    return ((1 - smoothing) * nll - smoothing * logp.sum(1)).mean()


@wrong("label_smoothed_loss", "smoothing is ignored")
def ls_plain(logits, target, smoothing, ignore_index):
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


@wrong("label_smoothed_loss", "swapped")
def ls_swap(logits, target, smoothing, ignore_index):
    keep = target != ignore_index
    logp = F.log_softmax(logits[keep], 1)
    nll = -logp.gather(1, target[keep][:, None]).squeeze(1)
    return (smoothing * nll - (1 - smoothing) * logp.mean(1)).mean()


@wrong("label_smoothed_loss", "summed over the rows")
def ls_sum(logits, target, smoothing, ignore_index):
    return F.cross_entropy(
        logits, target, ignore_index=ignore_index, label_smoothing=smoothing, reduction="sum"
    )


@wrong("label_smoothed_loss", "shape ()")
def ls_keepdim(logits, target, smoothing, ignore_index):
    return F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=smoothing)[None]


# ---- greedy_decode


def _loop(
    model,
    src,
    max_len,
    bos_id,
    eos_id,
    pad_id,
    *,
    pos=-1,
    pad=True,
    bos=False,
    early=True,
    last_only=False,
    any_stop=False,
):
    memory = model.encode(src)
    out = [[bos_id] for _ in range(src.shape[0])]
    finished = [False] * src.shape[0]
    for _ in range(max_len):
        prefix = torch.tensor([o[-1:] if last_only else o for o in out])
        logits = model.decode(prefix, memory, src)
        nxt = logits[:, pos, :].argmax(dim=-1).tolist()
        for b, tok in enumerate(nxt):
            if finished[b] and pad:
                tok = pad_id
            out[b].append(tok)
            finished[b] = finished[b] or tok == eos_id
        if early and (all(finished) or (any_stop and any(finished))):
            break
    res = torch.tensor(out)
    return res if bos else res[:, 1:]


@correct("greedy_decode")
def greedy_to_max_len(model, src, max_len, bos_id, eos_id, pad_id):
    """Runs all max_len steps and pads after EOS (correct, just slower)."""
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, early=False)


@correct("greedy_decode")
def greedy_stop_early(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id)


@correct("greedy_decode")
def greedy_post_hoc_padding(model, src, max_len, bos_id, eos_id, pad_id):
    """Generates freely to max_len, then overwrites everything after each first EOS."""
    with torch.no_grad():
        memory = model.encode(src)
        ys = torch.full((src.shape[0], 1), bos_id)
        for _ in range(max_len):
            ys = torch.cat([ys, model.decode(ys, memory, src)[:, -1].argmax(-1, keepdim=True)], 1)
        gen = ys[:, 1:]
        seen = torch.zeros(src.shape[0], dtype=torch.bool)
        for t in range(gen.shape[1]):
            gen[seen, t] = pad_id
            seen |= gen[:, t] == eos_id
        return gen


@correct("greedy_decode")
def greedy_one_extra_step(model, src, max_len, bos_id, eos_id, pad_id):
    """Stops one step after every row is finished (a trailing column of pads): still correct."""
    res = _loop(model, src, max_len, bos_id, eos_id, pad_id, early=False)
    width = min(max_len, int((res != pad_id).sum(1).max()) + 1)
    return res[:, :width]


@wrong("greedy_decode", "keeps BOS")
def greedy_with_bos(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, bos=True)


@wrong("greedy_decode", "keeps BOS")
def greedy_with_bos_full(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, bos=True, early=False)


@wrong("greedy_decode", "not padded after EOS")
def greedy_no_padding(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, pad=False)


@wrong("greedy_decode", "not padded after EOS")
def greedy_no_padding_full(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, pad=False, early=False)


@wrong("greedy_decode", "wrong position")
def greedy_first_logits(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, pos=0)


@wrong("greedy_decode", "only the last token")
def greedy_last_token_only(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, last_only=True)


@wrong("greedy_decode", "first row produced EOS")
def greedy_any(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id, any_stop=True)


@wrong("greedy_decode", "hard-coded")
def greedy_hardcoded_ids(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, 1, 2, 0)


@wrong("greedy_decode", "integer token ids")
def greedy_float(model, src, max_len, bos_id, eos_id, pad_id):
    return _loop(model, src, max_len, bos_id, eos_id, pad_id).float()


@wrong("greedy_decode", "differs")
def greedy_sampling(model, src, max_len, bos_id, eos_id, pad_id):
    g = torch.Generator().manual_seed(0)
    memory = model.encode(src)
    ys = torch.full((src.shape[0], 1), bos_id)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    for _ in range(max_len):
        p = torch.softmax(model.decode(ys, memory, src)[:, -1], -1)
        nxt = torch.multinomial(p, 1, generator=g).squeeze(1).masked_fill(done, pad_id)
        ys = torch.cat([ys, nxt[:, None]], 1)
        done |= nxt == eos_id
        if done.all():
            break
    return ys[:, 1:]
