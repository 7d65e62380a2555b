"""Implementations of the lesson 06 exercises, right and wrong, written independently."""

import math

import torch

from tests.mutants import correct, wrong

# ---- causal_mask


@correct("causal_mask")
def causal_mask_by_comparison(T):
    i = torch.arange(T)
    return i[None, :] > i[:, None]


@correct("causal_mask")
def causal_mask_loops(T):
    m = torch.zeros(T, T, dtype=torch.bool)
    for q in range(T):
        for k in range(q + 1, T):
            m[q, k] = True
    return m


@wrong("causal_mask", "off by one")
def causal_mask_blocks_self(T):
    i = torch.arange(T)
    return i[None, :] >= i[:, None]


@wrong("causal_mask", "see the next token")
def causal_mask_leaks_next(T):
    i = torch.arange(T)
    return i[None, :] > i[:, None] + 1


@wrong("causal_mask", "inverted")
def causal_mask_allowed_sense(T):
    return torch.tril(torch.ones(T, T)).bool()


@wrong("causal_mask", "dtype torch.bool")
def causal_mask_float_inf(T):
    return torch.triu(torch.full((T, T), float("-inf")), 1)


@wrong("causal_mask", "past is blocked")
def causal_mask_transposed(T):
    i = torch.arange(T)
    return i[None, :] < i[:, None]


# ---- padding_mask


@correct("padding_mask")
def padding_mask_eq(tokens, pad_id):
    return torch.eq(tokens, pad_id)


@correct("padding_mask")
def padding_mask_loop(tokens, pad_id):
    out = torch.zeros(tokens.shape, dtype=torch.bool)
    for b in range(tokens.shape[0]):
        for s in range(tokens.shape[1]):
            out[b, s] = bool(tokens[b, s] == pad_id)
    return out


@wrong("padding_mask", "inverted")
def padding_mask_real_tokens(tokens, pad_id):
    return tokens.ne(pad_id)


@wrong("padding_mask", "hard-coded")
def padding_mask_zero(tokens, pad_id):
    return tokens == 0


@wrong("padding_mask", "dtype torch.bool")
def padding_mask_long(tokens, pad_id):
    return (tokens == pad_id).long()


@wrong("padding_mask", "changed the tokens")
def padding_mask_in_place(tokens, pad_id):
    m = tokens == pad_id
    tokens[m] = 0
    return m


# ---- scaled_dot_product_attention


def _softmax_blocked(scores, mask):
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(w, nan=0.0)


@correct("scaled_dot_product_attention")
def sdpa_einsum(q, k, v, attn_mask=None):
    scores = torch.einsum("...td,...sd->...ts", q, k) / math.sqrt(q.size(-1))
    w = _softmax_blocked(scores, attn_mask)
    return torch.einsum("...ts,...sv->...tv", w, v), w


@correct("scaled_dot_product_attention")
def sdpa_float64_explicit_exp(q, k, v, attn_mask=None):
    s = (q.double() @ k.double().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if attn_mask is not None:
        keep = ~torch.broadcast_to(attn_mask, s.shape)
    else:
        keep = torch.ones_like(s, dtype=torch.bool)
    s = s - s.masked_fill(~keep, -1e300).amax(-1, keepdim=True).clamp_min(-1e300)
    e = torch.where(keep, s.exp(), torch.zeros_like(s))
    z = e.sum(-1, keepdim=True)
    w = torch.where(z > 0, e / z.clamp_min(1e-300), torch.zeros_like(e))
    return (w @ v.double()).to(q.dtype), w.to(q.dtype)


@correct("scaled_dot_product_attention")
def sdpa_finite_fill_then_zero(q, k, v, attn_mask=None):
    """Fill with the dtype's minimum, then zero every blocked weight: empty rows come out zero."""
    s = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if attn_mask is None:
        w = s.softmax(-1)
    else:
        blocked = attn_mask.expand(s.shape)
        w = s.masked_fill(blocked, torch.finfo(s.dtype).min).softmax(-1).masked_fill(blocked, 0.0)
    return torch.matmul(w, v), w


@correct("scaled_dot_product_attention")
def sdpa_builtin_on_allowed_rows(q, k, v, attn_mask=None):
    """torch's fused kernel for the output (with True = allowed), weights computed beside it;
    rows with nothing allowed are zeroed afterwards."""
    s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if attn_mask is None:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v), s.softmax(-1)
    allowed = ~attn_mask.expand(s.shape)
    w = torch.softmax(s.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return out.masked_fill(~allowed.any(-1, keepdim=True), 0.0), w


@wrong("scaled_dot_product_attention", "multiplying the scores")
def sdpa_mask_by_product(q, k, v, attn_mask=None):
    """The seed notes' masking: the energies times a 0/1 matrix, then the softmax."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s * (~attn_mask).float()
    w = s.softmax(-1)
    return w @ v, w


@wrong("scaled_dot_product_attention", "multiplying the scores")
def sdpa_mask_by_product_of_mask(q, k, v, attn_mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s * attn_mask
    w = s.softmax(-1)
    return w @ v, w


@wrong("scaled_dot_product_attention", "broadcast the wrong way")
def sdpa_mask_unsqueezed_as_padding(q, k, v, attn_mask=None):
    """Every 2-D mask treated as a (B, S) key-padding mask."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        m = attn_mask.unsqueeze(1) if attn_mask.dim() == 2 and s.dim() == 3 else attn_mask
        s = s.masked_fill(m, float("-inf"))
    w = s.softmax(-1).nan_to_num(0.0)
    return w @ v, w


@wrong("scaled_dot_product_attention", "uniform")
def sdpa_fill_dtype_min(q, k, v, attn_mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, torch.finfo(s.dtype).min)
    w = s.softmax(-1)
    return w @ v, w


@wrong("scaled_dot_product_attention", "not scaled")
def sdpa_unscaled(q, k, v, attn_mask=None):
    w = _softmax_blocked(q @ k.transpose(-2, -1), attn_mask)
    return w @ v, w


@wrong("scaled_dot_product_attention", "divided by d_k instead of sqrt(d_k)")
def sdpa_over_d(q, k, v, attn_mask=None):
    w = _softmax_blocked(q @ k.transpose(-2, -1) / q.shape[-1], attn_mask)
    return w @ v, w


@wrong("scaled_dot_product_attention", "query axis")
def sdpa_softmax_dim(q, k, v, attn_mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, float("-inf"))
    w = torch.nan_to_num(torch.softmax(s, dim=-2))
    return w @ v, w


@wrong("scaled_dot_product_attention", "mask is used inverted")
def sdpa_inverted(q, k, v, attn_mask=None):
    w = _softmax_blocked(
        q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), None if attn_mask is None else ~attn_mask
    )
    return w @ v, w


@wrong("scaled_dot_product_attention", "after the softmax")
def sdpa_mask_late(q, k, v, attn_mask=None):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if attn_mask is not None:
        w = w * (~attn_mask)
    return w @ v, w


@wrong("scaled_dot_product_attention", "gives NaN")
def sdpa_nan(q, k, v, attn_mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    return w @ v, w


@wrong("scaled_dot_product_attention", "uniform")
def sdpa_big_negative(q, k, v, attn_mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s.masked_fill(attn_mask, -1e9)
    w = torch.softmax(s, dim=-1)
    return w @ v, w


@wrong("scaled_dot_product_attention", "tuple (out, weights)")
def sdpa_out_only(q, k, v, attn_mask=None):
    return sdpa_einsum(q, k, v, attn_mask)[0]


@wrong("scaled_dot_product_attention", "shape")
def sdpa_swapped_outputs(q, k, v, attn_mask=None):
    out, w = sdpa_einsum(q, k, v, attn_mask)
    return w, out


@wrong("scaled_dot_product_attention", "modified one of its inputs")
def sdpa_in_place(q, k, v, attn_mask=None):
    q.mul_(1 / math.sqrt(q.shape[-1]))
    w = _softmax_blocked(q @ k.transpose(-2, -1), attn_mask)
    return w @ v, w
