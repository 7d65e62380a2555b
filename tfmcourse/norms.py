"""Batch norm and layer norm (lesson 03), and the probes that show how they differ.

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

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tfmcourse.attention import MultiHeadAttention
from tfmcourse.masks import causal_mask


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


def make_norm(kind: str, d_model: int) -> nn.Module:
    """``"layer"`` → ``nn.LayerNorm``, ``"batch"`` → :class:`SequenceBatchNorm`, ``"none"`` → identity."""
    if kind == "layer":
        return nn.LayerNorm(d_model)
    if kind == "batch":
        return SequenceBatchNorm(d_model)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm kind must be 'layer', 'batch' or 'none', got {kind!r}")


class TinyCausalDecoder(nn.Module):
    """A decoder-only layer stack (causal self-attention + feed-forward, post-norm) for probes.

    ``norm`` picks the normalisation after each residual: ``"layer"`` or
    ``"batch"`` (batch norm over batch *and* time, the way it would be dropped
    into a sequence model). The attention is causal, so any dependence of
    position ``t`` on later positions comes from the norm.

    Shape:
        x ``(B, T, D)`` → ``(B, T, D)``.
    """

    def __init__(
        self, d_model: int = 32, n_heads: int = 4, d_ff: int = 64, n_layers: int = 2, norm: str = "layer"
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(n_layers):
            self.layers.append(
                nn.ModuleDict(
                    {
                        "self_attn": MultiHeadAttention(d_model, n_heads),
                        "norm1": make_norm(norm, d_model),
                        "ff": nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model)),
                        "norm2": make_norm(norm, d_model),
                    }
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        mask = causal_mask(x.shape[1], device=x.device)  # (T, T)
        for layer in self.layers:
            x = layer["norm1"](x + layer["self_attn"](x, x, x, attn_mask=mask))  # (B, T, D)
            x = layer["norm2"](x + layer["ff"](x))  # (B, T, D)
        return x


@torch.no_grad()
def dependence_matrix(
    fn: Callable[[Tensor], Tensor], x: Tensor, *, scale: float = 1.0, seed: int = 0
) -> Tensor:
    """How much output position ``i`` moves when input position ``j`` is changed.

    For each ``j``, every sample's token ``j`` is replaced by fresh noise and
    ``D[i, j]`` is the largest absolute change of any output at position ``i``.
    A causal function has ``D[i, j] == 0`` for every ``j > i`` (above the diagonal).

    Shape:
        x ``(B, T, D)``; ``fn`` maps ``(B, T, D)`` → ``(B, T, D)``; returns ``(T, T)``.
    """
    if x.dim() != 3:
        raise ValueError(f"dependence_matrix expects x of shape (B, T, D), got {tuple(x.shape)}")
    g = torch.Generator().manual_seed(seed)
    base = fn(x)
    T = x.shape[1]
    D = torch.zeros(T, T)
    for j in range(T):
        x2 = x.clone()
        x2[:, j] = torch.randn(x[:, j].shape, generator=g, dtype=x.dtype) * scale
        D[:, j] = (fn(x2) - base).abs().amax(dim=(0, 2))  # (T,)
    return D


def future_leak(D: Tensor) -> float:
    """Largest entry strictly above the diagonal of a :func:`dependence_matrix` (0 = causal)."""
    return float(D.triu(1).max()) if D.shape[0] > 1 else 0.0


def padded_batch(
    lengths: list[int], T: int, C: int, *, seed: int = 0, mean: float = 2.0, pad_value: float = 0.0
) -> tuple[Tensor, Tensor]:
    """A ``(B, T, C)`` batch of real tokens (non-zero mean) padded with ``pad_value`` to length ``T``.

    The real tokens depend only on ``seed`` and the lengths, not on ``T``, so
    the same sentences can be padded to different lengths.

    Shape:
        returns ``x (B, T, C)`` and ``key_padding_mask (B, T)`` (True at pads).
    """
    if max(lengths) > T:
        raise ValueError(f"padded_batch: a length {max(lengths)} does not fit in T={T}")
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(len(lengths), max(lengths), C, generator=g) + mean  # (B, Lmax, C)
    x = torch.full((len(lengths), T, C), float(pad_value))
    pad = torch.ones(len(lengths), T, dtype=torch.bool)
    for b, n in enumerate(lengths):
        x[b, :n] = real[b, :n]
        pad[b, :n] = False
    return x, pad


def other_samples_effect(
    norm: Callable[[Tensor], Tensor],
    batch_size: int,
    C: int = 16,
    *,
    seq_len: int | None = None,
    trials: int = 5,
    seed: int = 0,
) -> float:
    """Mean absolute change of sample 0's output when the *other* samples of its batch are redrawn.

    Zero for a per-sample norm (layer norm); positive for batch norm, shrinking
    as the batch grows. ``norm`` maps ``(B, C)`` (or ``(B, T, C)`` when
    ``seq_len`` is given) to the same shape.
    """
    if batch_size < 2:
        raise ValueError("other_samples_effect needs batch_size >= 2 (sample 0 and at least one other)")
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, C) if seq_len is None else (batch_size, seq_len, C)
    x = torch.randn(*shape, generator=g) * 1.5 + 1.0
    base = norm(x)[0]
    changes = []
    for _ in range(trials):
        x2 = x.clone()
        x2[1:] = torch.randn(*x[1:].shape, generator=g) * 1.5 + 1.0
        changes.append((norm(x2)[0] - base).abs().mean())
    return float(torch.stack(changes).mean())


# ---------------------------------------------------------------- RMSNorm (lesson 10)


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
