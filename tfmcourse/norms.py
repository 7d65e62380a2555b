"""Batch norm and layer norm (lesson 03).

Both normalise ``x̂ = (x - mean) / sqrt(var + eps)`` (biased variance, eps
*inside* the square root) and then scale and shift per feature,
``gamma * x̂ + beta``. They differ only in *which* values the statistics are
taken over:

- batch norm (배치 정규화): per channel, over every axis but the last
  (the batch, and the time axis of a ``(B, T, C)`` sequence), so one sample's
  output depends on the other samples in the batch;
- layer norm (층 정규화): per token, over the last (feature) axis, so a token's
  output depends on that token only.

``batch_norm`` is the training-mode math of ``nn.BatchNorm1d``;
``layer_norm`` equals ``torch.nn.functional.layer_norm`` over the last axis.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _check_affine(name: str, x: Tensor, gamma: Tensor, beta: Tensor, min_dim: int) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(
            f"{name}: x must be a floating-point tensor, got {type(x).__name__}"
            + (f" of dtype {x.dtype}" if isinstance(x, Tensor) else "")
        )
    if x.dim() < min_dim:
        want = "(B, ..., C)" if min_dim == 2 else "(..., D)"
        raise ValueError(
            f"{name}: x must have at least {min_dim} dimension(s) {want}, got shape {tuple(x.shape)}"
        )
    n = x.shape[-1]
    for pname, p in (("gamma", gamma), ("beta", beta)):
        if not isinstance(p, Tensor) or tuple(p.shape) != (n,):
            got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise ValueError(f"{name}: {pname} must have shape ({n},) (the size of x's last axis), got {got}")


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """Batch normalisation with training-mode (batch) statistics.

    Mean and biased variance per channel over every axis but the last, as
    ``nn.BatchNorm1d`` computes them in training mode.

    Shape:
        x ``(B, ..., C)`` (e.g. ``(B, C)`` or ``(B, T, C)``); gamma, beta ``(C,)``;
        returns the shape of ``x``.
    """
    _check_affine("batch_norm", x, gamma, beta, min_dim=2)
    dims = tuple(range(x.dim() - 1))  # every axis but the channels
    mean = x.mean(dim=dims, keepdim=True)  # (1, ..., 1, C)
    var = x.var(dim=dims, unbiased=False, keepdim=True)  # (1, ..., 1, C), biased
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the last axis, equal to ``F.layer_norm(x, (D,), gamma, beta, eps)``.

    Shape:
        x ``(..., D)``; gamma, beta ``(D,)``; returns the shape of ``x``.
    """
    _check_affine("layer_norm", x, gamma, beta, min_dim=1)
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = x.var(dim=-1, unbiased=False, keepdim=True)  # (..., 1), biased
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def masked_batch_norm(
    x: Tensor, gamma: Tensor, beta: Tensor, key_padding_mask: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Batch norm of a padded ``(B, T, C)`` batch whose statistics skip the pads.

    The usual fix for pads leaking into the statistics. It still depends on the
    rest of the batch (and on which tokens are real), unlike layer norm.

    Shape:
        x ``(B, T, C)``; key_padding_mask ``(B, T)`` bool, True at pads; returns ``(B, T, C)``.
    """
    _check_affine("masked_batch_norm", x, gamma, beta, min_dim=3)
    if x.dim() != 3:
        raise ValueError(f"masked_batch_norm: x must be (B, T, C), got shape {tuple(x.shape)}")
    if key_padding_mask is None:
        return batch_norm(x, gamma, beta, eps)
    if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"masked_batch_norm: key_padding_mask must be bool (B, T) = {tuple(x.shape[:2])}, "
            f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )
    real = (~key_padding_mask).to(x.dtype)[..., None]  # (B, T, 1)
    n = real.sum()
    if n == 0:
        raise ValueError("masked_batch_norm: every position is padding")
    mean = (x * real).sum(dim=(0, 1)) / n  # (C,)
    var = (((x - mean) ** 2) * real).sum(dim=(0, 1)) / n  # (C,)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


class SequenceBatchNorm(nn.Module):
    """``nn.BatchNorm1d`` applied to a batch-first ``(B, T, C)`` sequence.

    ``nn.BatchNorm1d`` wants channels on axis 1, so transpose in and out; its
    statistics then run over the batch *and* the time axis (running statistics
    in eval mode).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm1d(num_channels, eps=eps, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"SequenceBatchNorm expects (B, T, C), got shape {tuple(x.shape)}")
        return self.bn(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """Root-mean-square normalisation over the last axis: ``x / sqrt(mean(x²) + eps) * weight``.

    Layer norm without the mean subtraction and without the shift ``beta``:
    it rescales each token to unit root-mean-square but does not centre it.
    Equal to ``torch.nn.functional.rms_norm(x, (D,), weight, eps)``.

    Shape:
        x ``(..., D)``; weight ``(D,)``; returns the shape of ``x``.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1:
        raise TypeError(f"rms_norm: x must be a floating-point tensor (..., D), got {type(x).__name__}")
    if not isinstance(weight, Tensor) or tuple(weight.shape) != (x.shape[-1],):
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"rms_norm: weight must have shape ({x.shape[-1]},) (x's last axis), got {got}")
    mean_square = x.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
    return x * torch.rsqrt(mean_square + eps) * weight


class RMSNorm(nn.Module):
    """:func:`rms_norm` with a learned ``weight`` (initialised to ones), like ``nn.RMSNorm``.

    Shape:
        x ``(..., d_model)``; returns the same shape.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)
