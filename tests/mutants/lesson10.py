"""Implementations of the lesson 10 exercises, right and wrong, written independently."""

import math

import torch
import torch.nn.functional as F

from tests.mutants import correct, wrong

# ---- rms_norm


@correct("rms_norm")
def rms_norm_float64_inside(x, weight, eps=1e-6):
    x64 = x.double()
    return (x64 / torch.sqrt((x64 * x64).mean(dim=-1, keepdim=True) + eps) * weight.double()).to(x.dtype)


@correct("rms_norm")
def rms_norm_norm_over_sqrt_d(x, weight, eps=1e-6):
    D = x.shape[-1]
    rms = torch.sqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 / D + eps)
    return weight * (x / rms)


@correct("rms_norm")
def rms_norm_builtin_einsum(x, weight, eps=1e-6):
    ms = torch.einsum("...d,...d->...", x, x)[..., None] / x.shape[-1]
    return x * ms.add(eps).rsqrt() * weight


@wrong("rms_norm", "outside the square root")
def rms_norm_eps_outside(x, weight, eps=1e-6):
    return weight * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)


@wrong("rms_norm", "layer norm")
def rms_norm_is_layer_norm(x, weight, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], weight, None, eps)


@wrong("rms_norm", "weight is not applied")
def rms_norm_forgets_weight(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@wrong("rms_norm", "summed, not averaged")
def rms_norm_l2_normalise(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight


@wrong("rms_norm", "eps is ignored")
def rms_norm_hardcoded_eps(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


# ---- apply_rope


def _even(d):
    if d % 2:
        raise ValueError(f"d={d} must be even: features are rotated in pairs")


@correct("apply_rope")
def apply_rope_complex(x, positions, base=10000.0):
    d = x.shape[-1]
    _even(d)
    freqs = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.outer(positions.double(), freqs)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2).to(x.dtype)


@correct("apply_rope")
def apply_rope_rotate_every_two(x, positions, base=10000.0):
    d = x.shape[-1]
    _even(d)
    inv = base ** (-torch.arange(0, d, 2).float() / d)
    theta = positions.float()[:, None] * inv  # (T, d/2)
    cos = theta.cos().repeat_interleave(2, -1)
    sin = theta.sin().repeat_interleave(2, -1)
    partner = torch.stack([-x[..., 1::2], x[..., 0::2]], -1).flatten(-2)  # (-b, a) per pair
    return x * cos + partner * sin


@correct("apply_rope")
def apply_rope_loops(x, positions, base=10000.0):
    _even(x.shape[-1])
    out = x.clone()
    d = x.shape[-1]
    for t, p in enumerate(positions.tolist()):
        for i in range(d // 2):
            th = p * base ** (-2 * i / d)
            a, b = x[..., t, 2 * i], x[..., t, 2 * i + 1]
            out[..., t, 2 * i] = a * math.cos(th) - b * math.sin(th)
            out[..., t, 2 * i + 1] = a * math.sin(th) + b * math.cos(th)
    return out


@wrong("apply_rope", "other* convention")
def apply_rope_rotate_half(x, positions, base=10000.0):
    d = x.shape[-1]
    _even(d)
    inv = base ** (-torch.arange(0, d, 2).float() / d)
    theta = positions.float()[:, None] * inv
    cos, sin = torch.cat([theta.cos()] * 2, -1), torch.cat([theta.sin()] * 2, -1)
    rot = torch.cat([-x[..., d // 2 :], x[..., : d // 2]], -1)
    return x * cos + rot * sin


@wrong("apply_rope", "wrong way")
def apply_rope_negative_angle(x, positions, base=10000.0):
    return apply_rope_rotate_every_two(x, -positions, base)


@wrong("apply_rope", "positions argument is ignored")
def apply_rope_from_zero(x, positions, base=10000.0):
    return apply_rope_rotate_every_two(x, torch.arange(x.shape[-2]), base)


@wrong("apply_rope", "base argument is ignored")
def apply_rope_base_fixed(x, positions, base=10000.0):
    return apply_rope_rotate_every_two(x, positions)


@wrong("apply_rope", "instead of 2i")
def apply_rope_exponent_i(x, positions, base=10000.0):
    d = x.shape[-1]
    _even(d)
    inv = base ** (-torch.arange(d // 2).float() / d)
    theta = positions.float()[:, None] * inv
    cos, sin = theta.cos().repeat_interleave(2, -1), theta.sin().repeat_interleave(2, -1)
    partner = torch.stack([-x[..., 1::2], x[..., 0::2]], -1).flatten(-2)
    return x * cos + partner * sin


@wrong("apply_rope", "ValueError")
def apply_rope_no_odd_check(x, positions, base=10000.0):
    d = x.shape[-1]
    if d % 2:
        return x
    return apply_rope_rotate_every_two(x, positions, base)


# ---- next_token_distribution


def _check_args(temperature, top_k, top_p):
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling arguments")


@correct("next_token_distribution")
def ntd_loops(logits, temperature=1.0, top_k=None, top_p=None):
    _check_args(temperature, top_k, top_p)
    out = torch.zeros_like(logits)
    for b in range(logits.shape[0]):
        row = logits[b].tolist()
        V = len(row)
        if temperature == 0:
            out[b, row.index(max(row))] = 1.0
            continue
        z = [v / temperature for v in row]
        kept = set(range(V))
        if top_k is not None and top_k < V:
            kth = sorted(z, reverse=True)[top_k - 1]
            kept = {i for i in kept if z[i] >= kth}
        m = max(z[i] for i in kept)
        e = {i: math.exp(z[i] - m) for i in kept}
        total = sum(e.values())
        if top_p is not None and top_p < 1:
            chosen, mass = set(), 0.0
            for i in sorted(kept, key=lambda i: (-e[i], i)):
                if mass >= top_p:
                    break
                chosen.add(i)
                mass += e[i] / total
            kept = chosen
        total = sum(e[i] for i in kept)
        for i in kept:
            out[b, i] = e[i] / total
    return out


@correct("next_token_distribution")
def ntd_sorted_filter(logits, temperature=1.0, top_k=None, top_p=None):
    _check_args(temperature, top_k, top_p)
    if temperature == 0:
        return F.one_hot(torch.argmax(logits, -1), logits.shape[-1]).float()
    z = logits.double() / temperature
    if top_k is not None:
        k = min(top_k, z.shape[-1])
        kth = torch.sort(z, -1, descending=True).values[..., k - 1 : k]
        z = torch.where(z < kth, torch.tensor(float("-inf"), dtype=z.dtype), z)
    p = torch.softmax(z, -1)
    if top_p is not None and top_p < 1.0:
        sp, idx = torch.sort(p, dim=-1, descending=True, stable=True)
        remove = torch.cumsum(sp, -1) - sp >= top_p
        p = p.masked_fill(torch.zeros_like(remove).scatter(-1, idx, remove), 0.0)
        p = p / p.sum(-1, keepdim=True)
    return p.to(logits.dtype)


@wrong("next_token_distribution", "ties at the top-k boundary")
def ntd_topk_indices(logits, temperature=1.0, top_k=None, top_p=None):
    _check_args(temperature, top_k, top_p)
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, z.topk(top_k, -1).indices, True)
        z = z.masked_fill(~keep, float("-inf"))
    return torch.softmax(z, -1)


@wrong("next_token_distribution", "one token early")
def ntd_top_p_excludes_crossing(logits, temperature=1.0, top_k=None, top_p=None):
    _check_args(temperature, top_k, top_p)
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        z = z.masked_fill(z < z.topk(top_k, -1).values[..., -1:], float("-inf"))
    p = torch.softmax(z, -1)
    if top_p is not None and top_p < 1:
        sp, idx = p.sort(-1, descending=True)
        remove = sp.cumsum(-1) > top_p
        remove[..., 0] = False
        p = p.masked_fill(torch.zeros_like(remove).scatter(-1, idx, remove), 0.0)
        p = p / p.sum(-1, keepdim=True)
    return p


@wrong("next_token_distribution", "multiplied by the temperature")
def ntd_times_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    _check_args(temperature, top_k, top_p)
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return ntd_sorted_filter(logits * temperature * temperature, temperature, top_k, top_p)


@wrong("next_token_distribution", "not renormalised")
def ntd_zeroes_without_renormalising(logits, temperature=1.0, top_k=None, top_p=None):
    _check_args(temperature, top_k, top_p)
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    kept = ntd_sorted_filter(logits, temperature, top_k, top_p) > 0
    return torch.softmax(logits / temperature, -1) * kept


@wrong("next_token_distribution", "ValueError")
def ntd_no_validation(logits, temperature=1.0, top_k=None, top_p=None):
    if temperature == 0 or (top_k is not None and top_k < 1):
        return ntd_sorted_filter(logits, 0.0)
    return ntd_sorted_filter(logits, abs(temperature), top_k, min(top_p, 1.0) if top_p else None)


@wrong("next_token_distribution", "NaN")
def ntd_divides_by_zero_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    if temperature == 0:  # forgets the greedy case: logits / 0
        return torch.softmax(logits / temperature, -1)
    return ntd_sorted_filter(logits, temperature, top_k, top_p)


# ---- train_step


def _loss(model, tokens, pad_id):
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=pad_id)


@correct("train_step")
def train_step_manual_masked_mean(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    logits = model(tokens[:, :-1])
    target = tokens[:, 1:]
    logp = torch.log_softmax(logits.double(), -1)
    nll = -logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    real = target != pad_id
    loss = (nll * real).sum() / real.sum()
    optimizer.zero_grad()
    loss.float().backward()
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), max_norm=max_grad_norm)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


@correct("train_step")
def train_step_manual_clipping(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    for p in model.parameters():
        p.grad = None
    loss = _loss(model, tokens, pad_id)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    factor = min(1.0, max_grad_norm / (float(total) + 1e-6))
    for g in grads:
        g.mul_(factor)
    optimizer.step()
    scheduler.step()
    return loss.item()


@wrong("train_step", "never cleared")
def train_step_accumulates(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    loss = _loss(model, tokens, pad_id)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@wrong("train_step", "scheduler is stepped before the optimizer")
def train_step_schedule_first(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    optimizer.zero_grad()
    loss = _loss(model, tokens, pad_id)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scheduler.step()
    optimizer.step()
    return loss.item()


@wrong("train_step", "clipped after optimizer.step()")
def train_step_clips_late(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    optimizer.zero_grad()
    loss = _loss(model, tokens, pad_id)
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scheduler.step()
    return loss.item()


@wrong("train_step", "pads are scored")
def train_step_scores_pads(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    optimizer.zero_grad()
    logits = model(tokens[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@wrong("train_step", "not shifted")
def train_step_no_shift(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    optimizer.zero_grad()
    logits = model(tokens)
    loss = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), ignore_index=pad_id)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@wrong("train_step", "global")
def train_step_clip_value(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    optimizer.zero_grad()
    loss = _loss(model, tokens, pad_id)
    loss.backward()
    for p in model.parameters():
        torch.nn.utils.clip_grad_norm_(p, max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


@wrong("train_step", "Python float")
def train_step_returns_tensor(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
    optimizer.zero_grad()
    loss = _loss(model, tokens, pad_id)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.detach()
