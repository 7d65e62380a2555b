"""Sinusoidal positional encoding (lesson 05).

``PE[p, 2i] = sin(p / 10000^(2i/d))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``:
each pair of columns ``(2i, 2i+1)`` is a point on a circle turning with
angular frequency ``ω_i = 10000^(-2i/d)`` radians per position. Hence

- ``PE[p + k] = R_k PE[p]`` with ``R_k`` block-diagonal 2×2 rotations by
  ``k·ω_i`` that do not depend on ``p`` (:func:`shift_matrix`);
- ``PE[p]·PE[q] = Σ_i cos((p - q)·ω_i)`` depends only on ``p - q``;
- low columns turn fast, high columns slowly, like the bits of a binary
  counter (:func:`binary_codes`, :func:`sign_changes`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

BASE = 10000.0


def frequencies(d_model: int, base: float = BASE, dtype: torch.dtype = torch.float64) -> Tensor:
    """Angular frequency of each column pair, ``ω_i = base^(-2i/d_model)``.

    Shape:
        returns ``(d_model // 2,)``, decreasing from 1.
    """
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model // 2,)
    return torch.exp(-math.log(base) * two_i / d_model).to(dtype)


def sinusoidal_positional_encoding(max_len: int, d_model: int) -> Tensor:
    """The sinusoid table of "Attention is all you need" (section 3.5).

    Columns interleave: even columns ``sin(p·ω_i)``, odd columns ``cos(p·ω_i)``,
    positions counted from 0. Computed in float64, returned as float32.

    Shape:
        returns ``(max_len, d_model)``.
    """
    if int(d_model) != d_model or d_model <= 0 or d_model % 2 != 0:
        raise ValueError(
            f"d_model must be a positive even integer (sin and cos columns come in pairs), "
            f"got d_model={d_model!r}"
        )
    if int(max_len) != max_len or max_len < 0:
        raise ValueError(f"max_len must be a non-negative integer, got {max_len!r}")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    angles = pos * frequencies(d_model)[None, :]  # (max_len, d_model // 2)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.float()  # (max_len, d_model)


def embed_with_positions(tokens: Tensor, embedding: nn.Embedding, pe: Tensor) -> Tensor:
    """Token embeddings scaled by ``sqrt(d_model)`` plus the first ``T`` rows of ``pe``.

    Shape:
        tokens ``(B, T)`` long; pe ``(max_len, D)`` with ``max_len >= T``; returns ``(B, T, D)``.
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
    T, D = tokens.shape[1], embedding.embedding_dim
    if pe.dim() != 2 or pe.shape[1] != D:
        raise ValueError(f"pe must be (max_len, {D}), got shape {tuple(pe.shape)}")
    if pe.shape[0] < T:
        raise ValueError(f"pe has {pe.shape[0]} positions, fewer than the sequence length T={T}")
    return embedding(tokens) * math.sqrt(D) + pe[:T]  # (B, T, D) + (T, D) broadcasts over B


def shift_matrix(k: int, d_model: int, base: float = BASE) -> Tensor:
    """The matrix ``R_k`` with ``PE[p + k] = R_k @ PE[p]`` for every position ``p``.

    Block ``i`` rotates the pair ``(sin, cos)`` by ``k·ω_i``:
    ``[[cos kω, sin kω], [-sin kω, cos kω]]``. It is orthogonal and independent of ``p``.

    Shape:
        returns ``(d_model, d_model)`` float64.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    theta = k * frequencies(d_model, base)  # (d_model // 2,)
    c, s = torch.cos(theta), torch.sin(theta)
    R = torch.zeros(d_model, d_model, dtype=torch.float64)
    idx = torch.arange(0, d_model, 2)
    R[idx, idx], R[idx, idx + 1] = c, s  # new sin = sin·cos(kω) + cos·sin(kω)
    R[idx + 1, idx], R[idx + 1, idx + 1] = -s, c  # new cos = cos·cos(kω) - sin·sin(kω)
    return R


def position_similarity(pe: Tensor, position: int, dims: slice | None = None) -> Tensor:
    """Dot product of ``pe[position]`` with every row of ``pe`` (optionally on some columns).

    Shape:
        pe ``(max_len, D)``; returns ``(max_len,)``.
    """
    table = pe if dims is None else pe[:, dims]
    return table @ table[position]  # (max_len,)


def binary_codes(max_len: int, n_bits: int) -> Tensor:
    """Binary representation of ``0 … max_len-1``, least significant bit in column 0.

    Shape:
        returns ``(max_len, n_bits)`` float, entries 0 or 1.
    """
    pos = torch.arange(max_len)[:, None]  # (max_len, 1)
    return ((pos >> torch.arange(n_bits)[None, :]) & 1).float()  # (max_len, n_bits)


def sign_changes(table: Tensor, threshold: float = 0.0) -> Tensor:
    """How often each column crosses ``threshold`` going down the positions.

    For bits use ``threshold=0.5``: it counts the flips of each bit; for the
    sinusoid table it counts how often each column changes sign.

    Shape:
        table ``(max_len, C)``; returns ``(C,)`` long.
    """
    above = table > threshold  # (max_len, C)
    return (above[1:] != above[:-1]).sum(0)  # (C,)


# ---------------------------------------------------------------- RoPE (lesson 10)


def apply_rope(x: Tensor, positions: Tensor, base: float = BASE) -> Tensor:
    """Rotary position embedding: rotate each interleaved pair of ``x`` by ``p·ω_i``.

    The pair ``(a, b) = (x[..., 2i], x[..., 2i+1])`` of the vector at position
    ``p`` becomes ``(a cos θ − b sin θ, a sin θ + b cos θ)`` with
    ``θ = p·ω_i = p·base^(-2i/d)``: the same pairs and frequencies as the
    sinusoid table, where ``R_k`` moved ``PE[p]`` to ``PE[p + k]``. Applied to
    queries and keys, ``rope(q, p)·rope(k, s)`` depends on ``p − s`` only.
    Angles are computed in float64 and the result has ``x``'s dtype.

    Shape:
        x ``(B, H, T, d)`` (any leading axes; positions index the second-to-last);
        positions ``(T,)`` integer; returns the shape of ``x``.
    """
    if x.dim() < 2:
        raise ValueError(f"apply_rope: x must be (..., T, d), got shape {tuple(x.shape)}")
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"apply_rope: the feature size d={d} must be even (features are rotated in pairs)")
    if positions.dim() != 1 or positions.shape[0] != x.shape[-2]:
        raise ValueError(
            f"apply_rope: positions must be (T,) with T={x.shape[-2]}, got shape {tuple(positions.shape)}"
        )
    cos, sin = rope_angles(positions, d, base)
    return rotate_pairs(x, cos.to(x.dtype), sin.to(x.dtype))


def rope_angles(positions: Tensor, d: int, base: float = BASE) -> tuple[Tensor, Tensor]:
    """``cos θ`` and ``sin θ`` of the angles ``θ = p·ω_i`` by which RoPE turns each pair.

    They depend only on the positions, not on the vectors: a model computes them
    once for every position it can see and looks them up (as real implementations do).

    Shape:
        positions ``(T,)`` integer; returns two ``(T, d/2)`` float64.
    """
    theta = positions.to(torch.float64)[:, None] * frequencies(d, base)[None, :]  # (T, d/2)
    return torch.cos(theta), torch.sin(theta)


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Turn each interleaved pair ``(a, b) = (x[..., 2i], x[..., 2i+1])`` into
    ``(a cos θ − b sin θ, a sin θ + b cos θ)``, given ``cos θ`` and ``sin θ``.

    Shape:
        x ``(..., T, d)``; cos and sin ``(T, d/2)`` in x's dtype; returns the shape of ``x``.
    """
    a, b = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)  # (..., T, d/2, 2)
    return rotated.flatten(-2)  # (..., T, d): pairs interleaved again
