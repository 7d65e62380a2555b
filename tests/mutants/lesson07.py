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
            blocked = blocked | attn_mask
        if key_padding_mask is not None and self.use_kpm:
            kp = (
                key_padding_mask[:, None, :, None] if self.pad_queries else key_padding_mask[:, None, None, :]
            )
            blocked = blocked | kp
        w = torch.softmax(s.masked_fill(blocked, float("-inf")), dim=-1).nan_to_num(0.0)
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
    ("key_padding_mask is ignored", dict(use_attn_mask=False, use_kpm=False)),
    ("attn_mask is ignored", dict(use_attn_mask=False)),
    ("key_padding_mask is ignored", dict(use_kpm=False)),
    ("applied to the queries instead of the keys", dict(pad_queries=True)),
]:
    _cls = _variant(**_knobs)
    _cls.__name__ = "MHA_" + "_".join(f"{k}={v}" for k, v in _knobs.items())
    wrong("MultiHeadAttention", _phrase)(_cls)


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
