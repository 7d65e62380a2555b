"""Scaled dot-product attention (lesson 06) and multi-head attention (lesson 07).

Masks are boolean with ``True`` = blocked, as in ``torch.nn.MultiheadAttention``.
A fully blocked row gets all-zero weights and a zero output, never NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tfmcourse.masks import merge_masks


def _check_mask(mask: Tensor, scores: Tensor, name: str) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = blocked), got dtype {mask.dtype}")
    try:
        torch.broadcast_shapes(mask.shape, scores.shape)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores.shape)} (..., T, S)"
        ) from None


def masked_softmax(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the last axis that gives exactly 0 where ``mask`` is True.

    A row whose every position is blocked gets all zeros (not NaN, not uniform).

    Shape:
        scores ``(..., S)``; mask bool broadcastable to ``(..., S)``; returns ``(..., S)``.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    _check_mask(mask, scores, "mask")
    mask = mask.expand_as(scores) if mask.shape != scores.shape else mask
    all_blocked = mask.all(dim=-1, keepdim=True)  # (..., 1)
    scores = scores.masked_fill(mask, float("-inf"))
    scores = scores.masked_fill(all_blocked, 0.0)  # keep softmax finite on empty rows
    return torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``softmax(q kᵀ / sqrt(d)) v`` with an optional blocked-mask.

    Shape:
        q ``(..., T, d)``, k ``(..., S, d)``, v ``(..., S, dv)``;
        attn_mask bool broadcastable to ``(..., T, S)``, True = blocked;
        returns ``out (..., T, dv)`` and ``weights (..., T, S)``.
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError("q, k and v need at least 2 dimensions: (..., length, features)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d: q is {tuple(q.shape)}, k is {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length S: k is {tuple(k.shape)}, v is {tuple(v.shape)}")
    d = q.shape[-1]
    attn_scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T, S)
    if attn_mask is not None:
        _check_mask(attn_mask, attn_scores, "attn_mask")
    attn_weights = masked_softmax(attn_scores, attn_mask)  # (..., T, S)
    context = attn_weights @ v  # (..., T, dv)
    return context, attn_weights


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """Split the feature axis into heads.

    Shape:
        x ``(B, T, D)``; returns ``(B, H, T, D // H)``.
    """
    if x.dim() != 3:
        raise ValueError(f"split_heads expects (B, T, D), got shape {tuple(x.shape)}")
    B, T, D = x.shape
    if D % n_heads != 0:
        raise ValueError(f"D={D} is not divisible by n_heads={n_heads}")
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)  # (B, H, T, d_head)


def merge_heads(x: Tensor) -> Tensor:
    """Inverse of :func:`split_heads`.

    Shape:
        x ``(B, H, T, d_head)``; returns ``(B, T, H * d_head)``.
    """
    if x.dim() != 4:
        raise ValueError(f"merge_heads expects (B, H, T, d_head), got shape {tuple(x.shape)}")
    B, H, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * dh)  # (B, T, D)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, equal to ``nn.MultiheadAttention(batch_first=True)``.

    ``W_Q, W_K, W_V`` are ``q_proj, k_proj, v_proj``; ``W_O`` is ``out_proj``.
    Dropout, when on, is applied to the attention weights (as torch does).

    Shape:
        query ``(B, T, D)``, key and value ``(B, S, D)``;
        attn_mask ``(T, S)`` or broadcastable to ``(B, H, T, S)``, True = blocked;
        key_padding_mask ``(B, S)``, True at pads;
        returns ``out (B, T, D)`` and, with ``need_weights``, ``weights (B, H, T, S)``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model <= 0 or n_heads <= 0:
            raise ValueError(f"d_model and n_heads must be positive, got {d_model} and {n_heads}")
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model={d_model} must be divisible by n_heads={n_heads} "
                f"(each head gets d_model // n_heads features)"
            )
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)  # W_Q
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)  # W_K
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)  # W_V
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W_O
        self.dropout = nn.Dropout(dropout)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # As nn.MultiheadAttention: xavier-uniform projections, zero biases.
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        if self.out_proj.bias is not None:
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ):
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must be (B, length, d_model={self.d_model}), got shape {tuple(t.shape)}"
                )
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key {tuple(key.shape)} and value {tuple(value.shape)} must share (B, S)")
        q = split_heads(self.q_proj(query), self.n_heads)  # (B, H, T, d_head)
        k = split_heads(self.k_proj(key), self.n_heads)  # (B, H, S, d_head)
        v = split_heads(self.v_proj(value), self.n_heads)  # (B, H, S, d_head)
        mask = merge_masks(attn_mask, key_padding_mask)  # broadcastable to (B, H, T, S)
        attn_scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H, T, S)
        if mask is not None:
            _check_mask(mask, attn_scores, "attn_mask/key_padding_mask")
        attn_weights = masked_softmax(attn_scores, mask)  # (B, H, T, S)
        context = self.dropout(attn_weights) @ v  # (B, H, T, d_head)
        out = self.out_proj(merge_heads(context))  # (B, T, D)
        return (out, attn_weights) if need_weights else out

    def load_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` with the same sizes."""
        D = self.d_model
        if mha.embed_dim != D or mha.num_heads != self.n_heads:
            raise ValueError(
                f"sizes differ: torch module has embed_dim={mha.embed_dim}, num_heads={mha.num_heads}; "
                f"this one d_model={D}, n_heads={self.n_heads}"
            )
        if mha.in_proj_weight is None:
            raise ValueError(
                "the torch module has separate kdim/vdim projections; only kdim == vdim == embed_dim is supported"
            )
        if (mha.in_proj_bias is None) != (self.q_proj.bias is None):
            raise ValueError("one module has biases and the other does not (bias=...)")
        with torch.no_grad():
            w = mha.in_proj_weight
            for i, lin in enumerate((self.q_proj, self.k_proj, self.v_proj)):
                lin.weight.copy_(w[i * D : (i + 1) * D])
                if lin.bias is not None:
                    lin.bias.copy_(mha.in_proj_bias[i * D : (i + 1) * D])
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if self.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)
        return self
