"""Scaled dot-product attention (lesson 06) and multi-head attention (lesson 07).

Masks are boolean with ``True`` = blocked, as in ``torch.nn.MultiheadAttention``.
A fully blocked row gets all-zero weights and a zero output, never NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """``softmax(q kᵀ / sqrt(d)) v`` with an optional blocked-mask.

    ``dropout_p`` drops attention weights before they multiply ``v`` (pass 0 in eval
    mode, as torch does); the returned weights are the ones before dropout.

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
    dropped = F.dropout(attn_weights, dropout_p) if dropout_p > 0 else attn_weights  # (..., T, S)
    context = dropped @ v  # (..., T, dv)
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
        k, v = self.project_kv(key, value)  # (B, H, S, d_head) each
        out, attn_weights = self.attend(query, k, v, attn_mask, key_padding_mask)
        return (out, attn_weights) if need_weights else out

    def project_kv(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values through ``W_K`` and ``W_V``, split into heads.

        What a decoder caches between steps: they do not depend on the queries.

        Shape:
            key and value ``(B, S, D)``; returns two ``(B, H, S, d_head)``.
        """
        self._check_input("key", key)
        self._check_input("value", value)
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key {tuple(key.shape)} and value {tuple(value.shape)} must share (B, S)")
        return self._in_proj(key, self.k_proj), self._in_proj(value, self.v_proj)

    def attend(
        self,
        query: Tensor,
        k: Tensor,
        v: Tensor,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attention of ``query`` over keys and values already through :meth:`project_kv`.

        Shape:
            query ``(B, T, D)``; k and v ``(B, H, S, d_head)``; masks as in ``forward``;
            returns ``out (B, T, D)`` and ``weights (B, H, T, S)``.
        """
        self._check_input("query", query)
        q = self._in_proj(query, self.q_proj)  # (B, H, T, d_head)
        mask = merge_masks(attn_mask, key_padding_mask)  # broadcastable to (B, H, T, S)
        dropout_p = self.dropout.p if self.training else 0.0
        context, attn_weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)  # (B, H, T, d_head)
        return self.out_proj(merge_heads(context)), attn_weights  # (B, T, D), (B, H, T, S)

    def _in_proj(self, x: Tensor, proj: nn.Linear) -> Tensor:
        return split_heads(proj(x), self.n_heads)  # (B, H, L, d_head)

    def _check_input(self, name: str, t: Tensor) -> None:
        if t.dim() != 3 or t.shape[-1] != self.d_model:
            raise ValueError(
                f"{name} must be (B, length, d_model={self.d_model}), got shape {tuple(t.shape)}"
            )
