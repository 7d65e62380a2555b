"""Implementations of the lesson 08 exercises, right and wrong, written independently of tfmcourse.

They need a multi-head attention with the SPEC's submodule names (q_proj, k_proj,
v_proj, out_proj); two are written here (einsum with -inf filling, and torch's
F.scaled_dot_product_attention with the mask converted to its "allowed" sense).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from tests.mutants import correct, wrong

# ---------------------------------------------------------------- attention used by the mutants


def _blocked(attn_mask, key_padding_mask, B, S):
    mask = None
    if attn_mask is not None:
        mask = attn_mask.bool()
    if key_padding_mask is not None:
        kpm = key_padding_mask.view(B, 1, 1, S)
        mask = kpm if mask is None else mask | kpm
    return mask


class EinsumMHA(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.h = n_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None):
        B, T, D = query.shape
        S = key.shape[1]
        q = self.q_proj(query).reshape(B, T, self.h, D // self.h)
        k = self.k_proj(key).reshape(B, S, self.h, D // self.h)
        v = self.v_proj(value).reshape(B, S, self.h, D // self.h)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D // self.h)
        mask = _blocked(attn_mask, key_padding_mask, B, S)
        w = self._weights(scores, mask)
        ctx = torch.einsum("bhts,bshd->bthd", self.drop(w), v).reshape(B, T, D)
        return self.out_proj(ctx)

    def _weights(self, scores, mask):
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        return torch.nan_to_num(torch.softmax(scores, dim=-1))


class FiniteFillMHA(EinsumMHA):
    """Wrong on fully blocked queries: -1e9 makes them uniform."""

    def _weights(self, scores, mask):
        return torch.softmax(scores if mask is None else scores.masked_fill(mask, -1e9), dim=-1)


class NanRowsMHA(EinsumMHA):
    """Wrong on fully blocked queries: softmax of a row of -inf is NaN."""

    def _weights(self, scores, mask):
        return torch.softmax(scores if mask is None else scores.masked_fill(mask, float("-inf")), dim=-1)


class QueryPaddingMHA(EinsumMHA):
    """Wrong: the key-padding mask blocks the padded *queries*' rows (B, 1, T, 1)."""

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None):
        if key_padding_mask is not None:
            B, T = key_padding_mask.shape
            rows = key_padding_mask.view(B, 1, T, 1)
            attn_mask = rows if attn_mask is None else (attn_mask | rows)
        return super().forward(query, key, value, attn_mask=attn_mask)


class ProductMaskMHA(EinsumMHA):
    """Wrong: the scores times the keep-mask."""

    def _weights(self, scores, mask):
        return torch.softmax(scores if mask is None else scores * ~mask, dim=-1)


class SdpaMHA(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.p = dropout

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None):
        B, T, D = query.shape
        S = key.shape[1]
        split = lambda t, L: t.view(B, L, self.n_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(query), T), split(self.k_proj(key), S), split(self.v_proj(value), S)
        blocked = _blocked(attn_mask, key_padding_mask, B, S)
        allowed = None if blocked is None else ~blocked  # F.sdpa's sense: True = may attend
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.p if self.training else 0.0
        )
        return self.out_proj(ctx.transpose(1, 2).reshape(B, T, D))


# ---------------------------------------------------------------- FeedForward


@correct("FeedForward")
class FeedForwardModules(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.linear2(self.drop(self.act(self.linear1(x))))


@correct("FeedForward")
class FeedForwardFloat64(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear2 = nn.Linear(d_ff, d_model)  # created in the other order on purpose
        self.linear1 = nn.Linear(d_model, d_ff)
        self.p = dropout

    def forward(self, x):
        h = F.linear(x.double(), self.linear1.weight.double(), self.linear1.bias.double()).clamp(min=0)
        h = F.dropout(h, self.p, training=self.training)
        return F.linear(h, self.linear2.weight.double(), self.linear2.bias.double()).to(x.dtype)


class _FF(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.p = dropout


@wrong("FeedForward", "no ReLU")
class FeedForwardLinearOnly(_FF):
    def forward(self, x):
        return self.linear2(self.linear1(x))


@wrong("FeedForward", "after linear2 instead")
class FeedForwardReluLast(_FF):
    def forward(self, x):
        return F.relu(self.linear2(self.linear1(x)))


@wrong("FeedForward", "ReLU is applied after linear2 as well")
class FeedForwardReluTwice(_FF):
    def forward(self, x):
        return F.relu(self.linear2(F.relu(self.linear1(x))))


@wrong("FeedForward", "tanh approximation")
class FeedForwardGeluTanh(_FF):
    def forward(self, x):
        h = self.linear1(x)
        return self.linear2(0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3))))


@wrong("FeedForward", "GELU")
class FeedForwardGelu(_FF):
    def forward(self, x):
        return self.linear2(F.gelu(self.linear1(x)))


@wrong("FeedForward", "residual connection belongs")
class FeedForwardWithResidual(_FF):
    def forward(self, x):
        return x + self.linear2(F.relu(self.linear1(x)))


@wrong("FeedForward", "dropout must be off in eval mode")
class FeedForwardDropoutAlways(_FF):
    def forward(self, x):
        return self.linear2(F.dropout(F.relu(self.linear1(x)), self.p))  # training=True by default


@wrong("FeedForward", "the contract names the submodule 'linear1'")
class FeedForwardOtherNames(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


@wrong("FeedForward", "parameters, expected")
class FeedForwardNoBias(_FF):
    def __init__(self, d_model, d_ff, dropout=0.0):
        nn.Module.__init__(self)
        self.linear1 = nn.Linear(d_model, d_ff, bias=False)
        self.linear2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.linear2(F.relu(self.linear1(x)))


# ---------------------------------------------------------------- EncoderLayer


@correct("EncoderLayer")
class EncoderLayerPlain(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = EinsumMHA(d_model, n_heads, dropout)
        self.ff = FeedForwardModules(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, src_key_padding_mask=None):
        sa = lambda h: self.drop(self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask))  # noqa: E731
        if self.norm_first:
            x = x + sa(self.norm1(x))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + sa(x))
        return self.norm2(x + self.drop(self.ff(x)))


def _sublayer(x, f, norm, norm_first):
    return x + f(norm(x)) if norm_first else norm(x + f(x))


@correct("EncoderLayer")
class EncoderLayerSublayers(nn.Module):
    """Written with a residual helper, F.layer_norm by hand and torch's fused attention."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.norm2 = nn.LayerNorm(d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = FeedForwardFloat64(d_model, d_ff, dropout)
        self.self_attn = SdpaMHA(d_model, n_heads, dropout)

    def forward(self, x, src_key_padding_mask=None):
        x = _sublayer(
            x,
            lambda h: self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask),
            self.norm1,
            self.norm_first,
        )
        return _sublayer(x, self.ff, self.norm2, self.norm_first)


class OnePassLayerNorm(nn.Module):
    """A LayerNorm written by hand with var = E[x²] - E[x]² in float32 (parameters as nn.LayerNorm)."""

    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x * x).mean(-1, keepdim=True) - mean * mean
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


@correct("EncoderLayer")
class EncoderLayerHandNorms(EncoderLayerPlain):
    """Correct, with hand-written one-pass LayerNorms."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.norm1, self.norm2 = OnePassLayerNorm(d_model), OnePassLayerNorm(d_model)


class _Enc(EncoderLayerPlain):
    pass


def _with_attention(base, mha):
    """``base`` with its attention modules replaced by ``mha`` (same names, same parameters)."""

    class Layer(base):
        def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
            super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
            self.self_attn = mha(d_model, n_heads, dropout)
            if hasattr(self, "cross_attn"):
                self.cross_attn = mha(d_model, n_heads, dropout)

    Layer.__name__ = f"{base.__name__}With{mha.__name__}"
    return Layer


@wrong("EncoderLayer", "another convention")
class EncoderLayerAlwaysPreLN(_Enc):
    """Pre-LN whatever norm_first says (the modern layout)."""

    def forward(self, x, src_key_padding_mask=None):
        x = x + self.self_attn(*(3 * [self.norm1(x)]), key_padding_mask=src_key_padding_mask)
        return x + self.ff(self.norm2(x))


@wrong("EncoderLayer", "pre-LN and post-LN are swapped")
class EncoderLayerSwapped(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        sa = lambda h: self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask)  # noqa: E731
        if not self.norm_first:
            x = x + sa(self.norm1(x))
            return x + self.ff(self.norm2(x))
        x = self.norm1(x + sa(x))
        return self.norm2(x + self.ff(x))


@wrong("EncoderLayer", "no residual connection around the feed-forward")
class EncoderLayerNoFFResidual(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        sa = lambda h: self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask)  # noqa: E731
        if self.norm_first:
            x = x + sa(self.norm1(x))
            return self.ff(self.norm2(x))
        x = self.norm1(x + sa(x))
        return self.norm2(self.ff(x))


@wrong("EncoderLayer", "no residual connection around the self-attention")
class EncoderLayerNoSAResidual(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask)
            return x + self.ff(self.norm2(x))
        x = self.norm1(self.self_attn(x, x, x, key_padding_mask=src_key_padding_mask))
        return self.norm2(x + self.ff(x))


@wrong("EncoderLayer", "padding mask is ignored")
class EncoderLayerIgnoresPadding(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        return super().forward(x, None)


@wrong("EncoderLayer", "padding mask is inverted")
class EncoderLayerInvertedPadding(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        return super().forward(x, None if src_key_padding_mask is None else ~src_key_padding_mask)


@wrong("EncoderLayer", "norm1 and norm2 are swapped")
class EncoderLayerNormsSwapped(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        self.norm1, self.norm2 = self.norm2, self.norm1
        try:
            return super().forward(x, src_key_padding_mask)
        finally:
            self.norm1, self.norm2 = self.norm2, self.norm1


@wrong("EncoderLayer", "the same LayerNorm (norm1) is used for both")
class EncoderLayerOneNorm(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        return _sublayer(
            _sublayer(
                x,
                lambda h: self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask),
                self.norm1,
                self.norm_first,
            ),
            self.ff,
            self.norm1,
            self.norm_first,
        )


@wrong("EncoderLayer", "before the residual add")
class EncoderLayerNormInside(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        if self.norm_first:
            return super().forward(x, src_key_padding_mask)
        x = x + self.norm1(self.self_attn(x, x, x, key_padding_mask=src_key_padding_mask))
        return x + self.norm2(self.ff(x))


@wrong("EncoderLayer", "pre-LN adds the normalised x back")
class EncoderLayerPreLNResidualNormed(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        if not self.norm_first:
            return super().forward(x, src_key_padding_mask)
        h = self.norm1(x)
        x = h + self.self_attn(h, h, h, key_padding_mask=src_key_padding_mask)
        h = self.norm2(x)
        return h + self.ff(h)


@wrong("EncoderLayer", "dropout must be off in eval mode")
class EncoderLayerDropoutAlways(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        return F.dropout(super().forward(x, src_key_padding_mask), 0.1)


@wrong("EncoderLayer", "just the output tensor")
class EncoderLayerReturnsTuple(_Enc):
    def forward(self, x, src_key_padding_mask=None):
        return super().forward(x, src_key_padding_mask), None


@wrong("EncoderLayer", "parameters, expected")
class EncoderLayerExtraLayer(_Enc):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.extra = nn.Linear(d_model, d_model)  # an unused extra layer


# ---------------------------------------------------------------- DecoderLayer


@correct("DecoderLayer")
class DecoderLayerPlain(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = EinsumMHA(d_model, n_heads, dropout)
        self.cross_attn = EinsumMHA(d_model, n_heads, dropout)
        self.ff = FeedForwardModules(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.norm_first = norm_first

    def _sa(self, h, tgt_mask, tgt_key_padding_mask):
        return self.self_attn(h, h, h, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask)

    def _ca(self, h, memory, memory_key_padding_mask):
        return self.cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask)

    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        if self.norm_first:
            y = y + self._sa(self.norm1(y), tgt_mask, tgt_key_padding_mask)
            y = y + self._ca(self.norm2(y), memory, memory_key_padding_mask)
            return y + self.ff(self.norm3(y))
        y = self.norm1(y + self._sa(y, tgt_mask, tgt_key_padding_mask))
        y = self.norm2(y + self._ca(y, memory, memory_key_padding_mask))
        return self.norm3(y + self.ff(y))


@correct("DecoderLayer")
class DecoderLayerSublayers(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.ff = FeedForwardFloat64(d_model, d_ff, dropout)
        self.cross_attn = SdpaMHA(d_model, n_heads, dropout)
        self.self_attn = SdpaMHA(d_model, n_heads, dropout)
        self.norm3, self.norm2, self.norm1 = (
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
        )

    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        blocks = [
            (
                lambda h: self.self_attn(h, h, h, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask),
                self.norm1,
            ),
            (
                lambda h: self.cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask),
                self.norm2,
            ),
            (self.ff, self.norm3),
        ]
        for f, norm in blocks:
            y = _sublayer(y, f, norm, self.norm_first)
        return y


@correct("DecoderLayer")
class DecoderLayerHandNorms(DecoderLayerPlain):
    """Correct, with hand-written one-pass LayerNorms."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.norm1, self.norm2, self.norm3 = (OnePassLayerNorm(d_model) for _ in range(3))


class _Dec(DecoderLayerPlain):
    pass


@wrong("DecoderLayer", "pre-LN and post-LN are swapped")
class DecoderLayerSwapped(_Dec):
    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        self.norm_first = not self.norm_first
        try:
            return super().forward(y, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask)
        finally:
            self.norm_first = not self.norm_first


@wrong("DecoderLayer", "no residual connection around the feed-forward")
class DecoderLayerNoFFResidual(_Dec):
    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        if self.norm_first:
            y = y + self._sa(self.norm1(y), tgt_mask, tgt_key_padding_mask)
            y = y + self._ca(self.norm2(y), memory, memory_key_padding_mask)
            return self.ff(self.norm3(y))
        y = self.norm1(y + self._sa(y, tgt_mask, tgt_key_padding_mask))
        y = self.norm2(y + self._ca(y, memory, memory_key_padding_mask))
        return self.norm3(self.ff(y))


@wrong("DecoderLayer", "reads the decoder's own states")
class DecoderLayerCrossOnItself(_Dec):
    def _ca(self, h, memory, memory_key_padding_mask):
        return self.cross_attn(h, h, h, key_padding_mask=memory_key_padding_mask)


@wrong("DecoderLayer", "never attends to the encoder's memory")
class DecoderLayerNoCross(_Dec):
    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        if self.norm_first:
            y = y + self._sa(self.norm1(y), tgt_mask, tgt_key_padding_mask)
            return y + self.ff(self.norm3(y))
        y = self.norm1(y + self._sa(y, tgt_mask, tgt_key_padding_mask))
        return self.norm3(y + self.ff(y))


@wrong("DecoderLayer", "causal mask is ignored")
class DecoderLayerNoCausal(_Dec):
    def _sa(self, h, tgt_mask, tgt_key_padding_mask):
        return self.self_attn(h, h, h, key_padding_mask=tgt_key_padding_mask)


@wrong("DecoderLayer", "memory padding mask is ignored")
class DecoderLayerNoMemoryPadding(_Dec):
    def _ca(self, h, memory, memory_key_padding_mask):
        return self.cross_attn(h, memory, memory)


@wrong("DecoderLayer", "target padding mask is ignored")
class DecoderLayerNoTargetPadding(_Dec):
    def _sa(self, h, tgt_mask, tgt_key_padding_mask):
        return self.self_attn(h, h, h, attn_mask=tgt_mask)


@wrong("DecoderLayer", "LayerNorms are used in the wrong order")
class DecoderLayerNormOrder(_Dec):
    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        self.norm2, self.norm3 = self.norm3, self.norm2
        try:
            return super().forward(y, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask)
        finally:
            self.norm2, self.norm3 = self.norm3, self.norm2


@wrong("DecoderLayer", "memory is normalised by the decoder's norm2")
class DecoderLayerNormalisesMemory(_Dec):
    def _ca(self, h, memory, memory_key_padding_mask):
        if self.norm_first:
            memory = self.norm2(memory)
        return self.cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask)


@wrong("DecoderLayer", "no parameter")
class DecoderLayerTorchNames(_Dec):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.multihead_attn = self.cross_attn  # torch's name instead of the contract's
        del self.cross_attn

    def _ca(self, h, memory, memory_key_padding_mask):
        return self.multihead_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask)


@wrong("DecoderLayer", "dropout must be off in eval mode")
class DecoderLayerDropoutAlways(_Dec):
    def _ca(self, h, memory, memory_key_padding_mask):
        return F.dropout(super()._ca(h, memory, memory_key_padding_mask), 0.1)


for _mha, _phrase in [
    (FiniteFillMHA, "fully blocked query gets uniform weights"),
    (NanRowsMHA, "fully blocked query gives NaN"),
    (ProductMaskMHA, "multiplying the scores"),
]:
    wrong("EncoderLayer", _phrase)(_with_attention(EncoderLayerPlain, _mha))
    wrong("DecoderLayer", _phrase)(_with_attention(DecoderLayerPlain, _mha))


@wrong("DecoderLayer", "another convention")
class DecoderLayerAlwaysPreLN(_Dec):
    """Pre-LN whatever norm_first says."""

    def forward(self, y, memory, tgt_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        y = y + self._sa(self.norm1(y), tgt_mask, tgt_key_padding_mask)
        y = y + self._ca(self.norm2(y), memory, memory_key_padding_mask)
        return y + self.ff(self.norm3(y))


@wrong("DecoderLayer", "two mistakes at once")
class DecoderLayerNoCausalPadsQueries(_Dec):
    """No causal mask, and the target padding applied to the queries."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__(d_model, n_heads, d_ff, dropout, norm_first)
        self.self_attn = QueryPaddingMHA(d_model, n_heads, dropout)

    def _sa(self, h, tgt_mask, tgt_key_padding_mask):
        return self.self_attn(h, h, h, key_padding_mask=tgt_key_padding_mask)
