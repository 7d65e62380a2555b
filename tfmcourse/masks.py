"""Attention masks. One convention everywhere: a boolean mask, ``True`` = blocked.

This is the sense of ``torch.nn.MultiheadAttention`` (``attn_mask``,
``key_padding_mask``). ``torch.nn.functional.scaled_dot_product_attention``
uses the opposite sense (``True`` = may attend); convert with ``~mask`` once,
where that function is called.
"""

from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(T: int, device: torch.device | str | None = None) -> Tensor:
    """Mask that stops query ``t`` from attending to keys after ``t``.

    Shape:
        returns ``(T, T)`` bool, ``True`` strictly above the diagonal.
    """
    if int(T) != T or T < 0:
        raise ValueError(f"causal_mask: T must be a non-negative integer, got {T!r}")
    return torch.ones(T, T, dtype=torch.bool, device=device).triu(diagonal=1)  # (T, T)


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """``True`` where ``tokens`` is the padding token.

    Shape:
        tokens ``(B, S)`` integer; returns ``(B, S)`` bool.
    """
    if tokens.dim() != 2:
        raise ValueError(f"padding_mask: tokens must be (B, S), got shape {tuple(tokens.shape)}")
    return tokens == pad_id  # (B, S)


def merge_masks(attn_mask: Tensor | None, key_padding_mask: Tensor | None) -> Tensor | None:
    """Combine an ``attn_mask`` and a ``key_padding_mask`` into one blocked-mask.

    Shape:
        attn_mask ``(T, S)`` or broadcastable to ``(B, H, T, S)``;
        key_padding_mask ``(B, S)``; returns a bool mask broadcastable to
        ``(B, H, T, S)`` (or ``None`` when both are ``None``).
    """
    mask = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise TypeError(f"attn_mask must be bool (True = blocked), got {attn_mask.dtype}")
        mask = attn_mask
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(f"key_padding_mask must be bool (True = pad), got {key_padding_mask.dtype}")
        if key_padding_mask.dim() != 2:
            raise ValueError(f"key_padding_mask must be (B, S), got shape {tuple(key_padding_mask.shape)}")
        kpm = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        mask = kpm if mask is None else (mask | kpm)
    return mask
