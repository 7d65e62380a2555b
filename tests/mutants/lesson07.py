"""Implementations of the lesson 07 exercises, right and wrong, written independently."""

import math

import torch
from torch import nn

from tests.mutants import correct, wrong

# ---- split_heads


@correct("split_heads")
def split_heads_einops_like(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, -1).permute(0, 2, 1, 3)


@correct("split_heads")
def split_heads_stack(x, n_heads):
    dh = x.shape[-1] // n_heads
    return torch.stack([x[..., h * dh : (h + 1) * dh] for h in range(n_heads)], dim=1)


@wrong("split_heads", "without the transpose")
def split_heads_view_only(x, n_heads):
    B, T, D = x.shape
    return x.contiguous().view(B, n_heads, T, D // n_heads)


@wrong("split_heads", "round-robin")
def split_heads_strided(x, n_heads):
    return torch.stack([x[..., h::n_heads] for h in range(n_heads)], dim=1)


@wrong("split_heads", "wrong order")
def split_heads_forgot_transpose_shape(x, n_heads):
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads)


# ---- merge_heads


@correct("merge_heads")
def merge_heads_cat(x):
    return torch.cat(list(x.unbind(dim=1)), dim=-1)


@correct("merge_heads")
def merge_heads_permute_contiguous(x):
    B, H, T, dh = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(B, T, H * dh)


@wrong("merge_heads", "without the transpose")
def merge_heads_reshape_only(x):
    B, H, T, dh = x.shape
    return x.reshape(B, T, -1)


@wrong("merge_heads", "interleaved")
def merge_heads_interleaved(x):
    return torch.stack(list(x.unbind(1)), dim=-1).flatten(-2)


@wrong("merge_heads", "raised RuntimeError")
def merge_heads_view_not_contiguous(x):
    B, H, T, dh = x.shape
    return x.transpose(1, 2).view(B, T, H * dh)


# ---- MultiHeadAttention


class MHAEinsum(nn.Module):
    """Correct, written with einsum and explicit head loops avoided."""

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        assert d_model % n_heads == 0
        self.h = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    # knobs the wrong variants below turn
    split_transpose = merge_transpose = True
    scale_by = "head"
    project_out = True
    use_attn_mask = use_kpm = True
    pad_queries = False
    attn_mask_as_padding = False
    keep_sense = False
    blocked_fill = "-inf"

    def _split(self, x):
        B, L, D = x.shape
        if self.split_transpose:
            return torch.einsum("blhd->bhld", x.view(B, L, self.h, D // self.h))
        return x.reshape(B, self.h, L, D // self.h)

    def _merge(self, x):
        B, H, L, d = x.shape
        if self.merge_transpose:
            return torch.einsum("bhld->blhd", x).reshape(B, L, H * d)
        return x.reshape(B, L, H * d)

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None, need_weights=False):
        q, k, v = (
            self._split(self.q_proj(query)),
            self._split(self.k_proj(key)),
            self._split(self.v_proj(value)),
        )
        d = q.shape[-1] if self.scale_by == "head" else query.shape[-1]
        s = torch.einsum("bhtd,bhsd->bhts", q, k)
        if self.scale_by != "none":
            s = s / math.sqrt(d)
        blocked = torch.zeros(s.shape, dtype=torch.bool)
        if attn_mask is not None and self.use_attn_mask:
            am = attn_mask
            if self.attn_mask_as_padding and am.dim() == 2:
                am = am[:, None, None, :]
            blocked = blocked | am
        if key_padding_mask is not None and self.use_kpm:
            kp = (
                key_padding_mask[:, None, :, None] if self.pad_queries else key_padding_mask[:, None, None, :]
            )
            blocked = blocked | kp
        if self.keep_sense and (attn_mask is not None or key_padding_mask is not None):
            blocked = ~blocked
        if self.blocked_fill == "product":
            w = torch.softmax(s * (~blocked).to(s.dtype), dim=-1)
        elif self.blocked_fill == "-inf":
            w = torch.softmax(s.masked_fill(blocked, float("-inf")), dim=-1).nan_to_num(0.0)
        elif self.blocked_fill == "min_then_zero":
            w = s.masked_fill(blocked, torch.finfo(s.dtype).min).softmax(-1).masked_fill(blocked, 0.0)
        elif self.blocked_fill == "nan":
            w = torch.softmax(s.masked_fill(blocked, float("-inf")), dim=-1)
        else:
            w = torch.softmax(s.masked_fill(blocked, self.blocked_fill), dim=-1)
        ctx = torch.einsum("bhts,bhsd->bhtd", self.drop(w), v)
        out = self._merge(ctx)
        if self.project_out:
            out = self.out_proj(out)
        return (out, w) if need_weights else out


correct("MultiHeadAttention")(MHAEinsum)


@correct("MultiHeadAttention")
class MHAPerHeadLoop(nn.Module):
    """Correct, one head at a time in float64, masks turned into additive -inf."""

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, n, nn.Linear(d_model, d_model, bias=bias))

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None, need_weights=False):
        B, T, _ = query.shape
        S = key.shape[1]
        Q, K, V = self.q_proj(query).double(), self.k_proj(key).double(), self.v_proj(value).double()
        add = torch.zeros(B, T, S, dtype=torch.float64)
        if attn_mask is not None:
            add = add.masked_fill(
                torch.broadcast_to(attn_mask, (T, S)) if attn_mask.dim() == 2 else attn_mask.reshape(B, T, S),
                float("-inf"),
            )
        if key_padding_mask is not None:
            add = add.masked_fill(key_padding_mask[:, None, :], float("-inf"))
        heads, maps = [], []
        for h in range(self.n_heads):
            sl = slice(h * self.d_head, (h + 1) * self.d_head)
            s = Q[..., sl] @ K[..., sl].transpose(1, 2) / math.sqrt(self.d_head) + add
            row_max = s.max(-1, keepdim=True).values
            e = torch.where(
                torch.isinf(s), torch.zeros_like(s), torch.exp(s - row_max.nan_to_num(0.0, neginf=0.0))
            )
            z = e.sum(-1, keepdim=True)
            w = torch.where(z > 0, e / z.clamp_min(1e-300), torch.zeros_like(e))
            heads.append(w @ V[..., sl])
            maps.append(w)
        out = self.out_proj(torch.cat(heads, -1).float())
        return (out, torch.stack(maps, 1).float()) if need_weights else out


def _variant(**knobs):
    return type("MHAVariant", (MHAEinsum,), dict(knobs))


for _phrase, _knobs in [
    ("split without the transpose", dict(split_transpose=False)),
    ("merged without the transpose", dict(merge_transpose=False)),
    ("split and merged without the transpose", dict(split_transpose=False, merge_transpose=False)),
    ("not scaled", dict(scale_by="none")),
    ("sqrt(d_model) instead of sqrt(d_head)", dict(scale_by="model")),
    ("output projection is missing", dict(project_out=False)),
    ("masks are ignored", dict(use_attn_mask=False, use_kpm=False)),
    ("attn_mask is ignored", dict(use_attn_mask=False)),
    ("key_padding_mask is ignored", dict(use_kpm=False)),
    ("applied to the queries instead of the keys", dict(pad_queries=True)),
    ("uniform weights", dict(blocked_fill=-1e9)),
    ("uniform weights", dict(blocked_fill=-10000.0)),
    ("gives NaN", dict(blocked_fill="nan")),
    ("multiplying the scores", dict(blocked_fill="product")),
    ("two mistakes at once", dict(use_attn_mask=False, pad_queries=True)),
    ("used inverted", dict(keep_sense=True)),
    ("broadcast as if it were a (B, S) key-padding mask", dict(attn_mask_as_padding=True)),
]:
    _cls = _variant(**_knobs)
    _cls.__name__ = "MHA_" + "_".join(f"{k}={v}" for k, v in _knobs.items())
    wrong("MultiHeadAttention", _phrase)(_cls)


@correct("MultiHeadAttention")
class MHAFiniteFillThenZero(MHAEinsum):
    """Correct: the dtype's minimum as the fill, then every blocked weight set to 0."""

    blocked_fill = "min_then_zero"


@wrong("MultiHeadAttention", "one map per head")
class MHAAveragedWeights(MHAEinsum):
    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        return (out[0], out[1].mean(1)) if isinstance(out, tuple) else out


@wrong("MultiHeadAttention", "parameters")
class MHAPerHeadProjections(nn.Module):
    """H separate full-width projections: H times the parameters."""

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        self.q_proj = nn.Linear(d_model, d_model * n_heads, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model * n_heads, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model * n_heads, bias=bias)
        self.out_proj = nn.Linear(d_model * n_heads, d_model, bias=bias)

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None, need_weights=False):
        raise AssertionError("never reached: the parameter count fails first")


@wrong("MultiHeadAttention", "no parameter")
class MHAOtherNames(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        self.W_Q = nn.Linear(d_model, d_model, bias=bias)
        self.W_K = nn.Linear(d_model, d_model, bias=bias)
        self.W_V = nn.Linear(d_model, d_model, bias=bias)
        self.W_O = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, *args, **kwargs):
        raise AssertionError("never reached")


@wrong("MultiHeadAttention", "bias=False")
class MHAIgnoresBias(MHAEinsum):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__(d_model, n_heads, dropout)


@wrong("MultiHeadAttention", "(out, weights)")
class MHANoWeights(MHAEinsum):
    def forward(self, *args, need_weights=False, **kwargs):
        return super().forward(*args, **kwargs)


@correct("MultiHeadAttention")
class MHAFusedKernel(nn.Module):
    """Correct: torch's fused scaled_dot_product_attention for the context (True = allowed there),
    weights computed beside it only when asked for, fully blocked queries zeroed."""

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None, need_weights=False):
        B, T, D = query.shape
        S = key.shape[1]
        heads = [
            p(x).unflatten(-1, (self.n_heads, -1)).transpose(1, 2)
            for p, x in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value))
        ]
        blocked = torch.zeros(B, 1, T, S, dtype=torch.bool)
        if attn_mask is not None:
            blocked = blocked | attn_mask
        if key_padding_mask is not None:
            blocked = blocked | key_padding_mask.view(B, 1, 1, S)
        allowed = ~blocked
        ctx = nn.functional.scaled_dot_product_attention(*heads, attn_mask=allowed)
        ctx = ctx.masked_fill(~allowed.any(-1, keepdim=True), 0.0)  # NaN rows of the kernel → 0
        out = self.out_proj(ctx.transpose(1, 2).flatten(2))
        if not need_weights:
            return out
        s = heads[0] @ heads[1].transpose(-1, -2) / math.sqrt(D // self.n_heads)
        w = s.masked_fill(blocked, float("-inf")).softmax(-1).nan_to_num(0.0)
        return out, w


@wrong("MultiHeadAttention", "residual connection and the LayerNorm belong")
class MHAWithResidual(MHAEinsum):
    """Adds the query back, as an encoder layer would."""

    def forward(self, query, key, value, *args, need_weights=False, **kwargs):
        out = super().forward(query, key, value, *args, need_weights=need_weights, **kwargs)
        if isinstance(out, tuple):
            return query + out[0], out[1]
        return query + out


@wrong("MultiHeadAttention", "residual connection and the LayerNorm belong")
class MHAWithResidualAndNorm(MHAEinsum):
    """Adds the query back and normalises, as a post-LN encoder layer would."""

    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__(d_model, n_heads, dropout, bias)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, query, key, value, *args, need_weights=False, **kwargs):
        out = super().forward(query, key, value, *args, need_weights=need_weights, **kwargs)
        if isinstance(out, tuple):
            return self.norm(query + out[0]), out[1]
        return self.norm(query + out)
