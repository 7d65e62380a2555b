"""Implementations of the lesson 02 exercises, right and wrong, written independently."""

import torch

from tests.mutants import correct, wrong

# ---- additive_scores


@correct("additive_scores")
def additive_scores_einsum(query, keys, W_query, W_key, v):
    q = torch.einsum("ad,bd->ba", W_query, query)
    k = torch.einsum("ad,bsd->bsa", W_key, keys)
    return torch.einsum("bsa,a->bs", torch.tanh(q[:, None] + k), v)


@correct("additive_scores")
def additive_scores_loop_float64(query, keys, W_query, W_key, v):
    B, S, _ = keys.shape
    out = torch.empty(B, S, dtype=torch.float64)
    for b in range(B):
        for j in range(S):
            out[b, j] = v.double() @ torch.tanh(
                W_query.double() @ query[b].double() + W_key.double() @ keys[b, j].double()
            )
    return out.to(query.dtype)


@wrong("additive_scores", "shape")
def additive_scores_linear_keepdim(query, keys, W_query, W_key, v):
    return (query @ W_query.T).unsqueeze(1) @ v[:, None] + (keys @ W_key.T) @ v[:, None]


@wrong("additive_scores", "no tanh")
def additive_scores_linear_flat(query, keys, W_query, W_key, v):
    return ((query @ W_query.T).unsqueeze(1) + keys @ W_key.T) @ v


@wrong("additive_scores", "ignore the encoder states")
def additive_scores_query_only(query, keys, W_query, W_key, v):
    e = torch.tanh(query @ W_query.T) @ v  # (B,)
    return e[:, None].repeat(1, keys.shape[1])


@wrong("additive_scores", "ignore the query")
def additive_scores_keys_only(query, keys, W_query, W_key, v):
    return torch.tanh(keys @ W_key.T) @ v


@wrong("additive_scores", "tanh is applied after v")
def additive_scores_tanh_last(query, keys, W_query, W_key, v):
    return torch.tanh(((query @ W_query.T).unsqueeze(1) + keys @ W_key.T) @ v)


@wrong("additive_scores", "softmax")
def additive_scores_softmaxed(query, keys, W_query, W_key, v):
    return torch.softmax(torch.tanh((query @ W_query.T).unsqueeze(1) + keys @ W_key.T) @ v, dim=-1)


@wrong("additive_scores", "each term separately")
def additive_scores_two_tanh(query, keys, W_query, W_key, v):
    return (torch.tanh(query @ W_query.T).unsqueeze(1) + torch.tanh(keys @ W_key.T)) @ v


@wrong("additive_scores", "calling it raised")
def additive_scores_untransposed(query, keys, W_query, W_key, v):
    return torch.tanh((query @ W_query).unsqueeze(1) + keys @ W_key) @ v


# ---- masked_softmax


@correct("masked_softmax")
def masked_softmax_nan_to_num(scores, mask=None):
    if mask is None:
        return torch.softmax(scores, dim=-1)
    w = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
    return torch.nan_to_num(w, nan=0.0)


@correct("masked_softmax")
def masked_softmax_explicit_float64(scores, mask=None):
    s = scores.double()
    keep = torch.ones_like(s, dtype=torch.bool) if mask is None else ~torch.broadcast_to(mask, s.shape)
    m = torch.where(keep, s, torch.full_like(s, -1e300)).amax(-1, keepdim=True)
    e = torch.where(keep, torch.exp(s - m), torch.zeros_like(s))
    z = e.sum(-1, keepdim=True)
    return torch.where(z > 0, e / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(e)).to(
        scores.dtype
    )


@correct("masked_softmax")
def masked_softmax_finite_fill_then_zero(scores, mask=None):
    """A finite fill (the dtype's minimum), then every blocked weight zeroed: right on empty rows too."""
    if mask is None:
        return scores.softmax(-1)
    blocked = mask.expand(scores.shape)
    w = scores.masked_fill(blocked, torch.finfo(scores.dtype).min).softmax(-1)
    return w.masked_fill(blocked, 0.0)


@correct("masked_softmax")
def masked_softmax_additive_bias(scores, mask=None):
    """Masks turned into an additive bias of 0 / -inf, empty rows detected and zeroed."""
    if mask is None:
        return torch.nn.functional.softmax(scores, dim=-1)
    bias = torch.zeros(mask.shape, dtype=scores.dtype).masked_fill(mask, float("-inf"))
    s = scores + bias
    empty = torch.isinf(s).all(-1, keepdim=True)
    w = torch.exp(s - torch.where(empty, torch.zeros_like(s), s).amax(-1, keepdim=True))
    w = w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    return torch.where(empty, torch.zeros_like(w), w)


@wrong("masked_softmax", "multiplying")
def masked_softmax_product_keep(scores, mask=None):
    """Multiplies the scores by the keep-mask: a blocked score becomes 0, not -inf."""
    keep = torch.ones_like(scores) if mask is None else (~mask).to(scores.dtype)
    return torch.softmax(scores * keep, dim=-1)


@wrong("masked_softmax", "multiplying")
def masked_softmax_product_mask(scores, mask=None):
    """Multiplies the scores by the mask itself."""
    return torch.softmax(scores if mask is None else scores * mask.float(), dim=-1)


@wrong("masked_softmax", "broadcast the wrong way")
def masked_softmax_mask_as_per_sample(scores, mask=None):
    """Treats every 2-D mask as a per-sample (B, S) key mask: unsqueeze(1) before use."""
    if mask is not None and mask.dim() == 2 and scores.dim() == 3:
        mask = mask.unsqueeze(1)
    w = torch.softmax(scores if mask is None else scores.masked_fill(mask, float("-inf")), dim=-1)
    return w.nan_to_num(0.0)


@wrong("masked_softmax", "pads are left unmasked")
def masked_softmax_ignores_mask(scores, mask=None):
    return torch.softmax(scores, dim=-1)


@wrong("masked_softmax", "inverted")
def masked_softmax_inverted(scores, mask=None):
    if mask is None:
        return torch.softmax(scores, -1)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)


@wrong("masked_softmax", "after the softmax")
def masked_softmax_zero_after(scores, mask=None):
    w = torch.softmax(scores, dim=-1)
    return w if mask is None else w * (~mask)


@wrong("masked_softmax", "wrong axis")
def masked_softmax_dim0(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, float("-inf"))
    return torch.nan_to_num(torch.softmax(s, dim=0))


@wrong("masked_softmax", "not a softmax")
def masked_softmax_divide_by_sum(scores, mask=None):
    s = scores if mask is None else scores * (~mask)
    return s / s.sum(dim=-1, keepdim=True)


@wrong("masked_softmax", "not a softmax")
def masked_softmax_unnormalised(scores, mask=None):
    e = torch.exp(scores)
    return e if mask is None else e * (~mask)


@wrong("masked_softmax", "gives NaN")
def masked_softmax_nan_rows(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1)


@wrong("masked_softmax", "uniform")
def masked_softmax_big_negative(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, -1e9)
    return torch.softmax(s, dim=-1)


@wrong("masked_softmax", "uniform")
def masked_softmax_dtype_min(scores, mask=None):
    s = scores if mask is None else scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    return torch.softmax(s, dim=-1)


@wrong("masked_softmax", "in place")
def masked_softmax_in_place(scores, mask=None):
    if mask is not None:
        scores.masked_fill_(mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)


@wrong("masked_softmax", "calling it raised")
def masked_softmax_no_none(scores, mask=None):
    return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1).nan_to_num(0.0)


# ---- bahdanau_attention


def _energy(query, keys, W_query, W_key, v):
    return torch.einsum("bsa,a->bs", torch.tanh((query @ W_query.T)[:, None] + keys @ W_key.T), v)


def _softmax_blocked(e, mask, fill=float("-inf")):
    if mask is not None:
        e = e.masked_fill(mask, fill)
    return torch.softmax(e, dim=-1)


@correct("bahdanau_attention")
def bahdanau_einsum(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    w = torch.nan_to_num(_softmax_blocked(_energy(query, keys, W_query, W_key, v), key_padding_mask))
    return torch.einsum("bs,bsd->bd", w, values), w


@correct("bahdanau_attention")
def bahdanau_bmm_explicit(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = torch.tanh(
        torch.nn.functional.linear(query, W_query).unsqueeze(1) + torch.nn.functional.linear(keys, W_key)
    ).matmul(v)
    keep = torch.ones_like(e, dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
    ex = torch.where(keep, torch.exp(e - e.max(-1, keepdim=True).values), torch.zeros_like(e))
    z = ex.sum(-1, keepdim=True)
    w = torch.where(z > 0, ex / z.clamp_min(1e-30), torch.zeros_like(ex))
    return torch.bmm(w.unsqueeze(1), values).squeeze(1), w


@wrong("bahdanau_attention", "from the keys instead of the values")
def bahdanau_context_from_keys(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    w = torch.nan_to_num(_softmax_blocked(_energy(query, keys, W_query, W_key, v), key_padding_mask))
    return torch.einsum("bs,bsd->bd", w, keys), w


@wrong("bahdanau_attention", "multiplying the energies")
def bahdanau_mask_by_product(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = torch.tanh(query.matmul(W_query.t()).unsqueeze(1) + keys.matmul(W_key.t())).matmul(v)
    if key_padding_mask is not None:
        e = e * (1 - key_padding_mask.float())
    a = e.softmax(dim=1)
    return torch.bmm(a.unsqueeze(1), values).squeeze(1), a


@wrong("bahdanau_attention", "pads are left unmasked")
def bahdanau_no_mask(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    w = torch.softmax(_energy(query, keys, W_query, W_key, v), dim=-1)
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "inverted")
def bahdanau_inverted(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    m = None if key_padding_mask is None else ~key_padding_mask
    w = torch.nan_to_num(_softmax_blocked(_energy(query, keys, W_query, W_key, v), m))
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "ignore the encoder states")
def bahdanau_query_only(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = (torch.tanh(query @ W_query.T) @ v)[:, None].repeat(1, keys.shape[1])
    w = torch.nan_to_num(_softmax_blocked(e, key_padding_mask))
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "not a softmax")
def bahdanau_raw_energies(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = _energy(query, keys, W_query, W_key, v)
    w = e if key_padding_mask is None else e.masked_fill(key_padding_mask, 0.0)
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "not a softmax")
def bahdanau_softmax_over_batch(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = _energy(query, keys, W_query, W_key, v)
    if key_padding_mask is not None:
        e = e.masked_fill(key_padding_mask, float("-inf"))
    w = torch.nan_to_num(torch.softmax(e, dim=0))
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "no tanh")
def bahdanau_linear_energy(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    e = ((query @ W_query.T)[:, None] + keys @ W_key.T) @ v
    w = torch.nan_to_num(_softmax_blocked(e, key_padding_mask))
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "after the softmax")
def bahdanau_mask_late(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    w = torch.softmax(_energy(query, keys, W_query, W_key, v), dim=-1)
    if key_padding_mask is not None:
        w = w.masked_fill(key_padding_mask, 0.0)
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "gets NaN")
def bahdanau_nan(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    w = _softmax_blocked(_energy(query, keys, W_query, W_key, v), key_padding_mask)
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "uniform")
def bahdanau_uniform(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    w = _softmax_blocked(_energy(query, keys, W_query, W_key, v), key_padding_mask, fill=-1e9)
    return torch.einsum("bs,bsd->bd", w, values), w


@wrong("bahdanau_attention", "tuple (context, weights)")
def bahdanau_context_only(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    return bahdanau_einsum(query, keys, values, W_query, W_key, v, key_padding_mask)[0]


@wrong("bahdanau_attention", "shape")
def bahdanau_swapped(query, keys, values, W_query, W_key, v, key_padding_mask=None):
    c, w = bahdanau_einsum(query, keys, values, W_query, W_key, v, key_padding_mask)
    return w, c
