"""Lesson 03's experiments: how batch norm couples samples, pads and positions; layer norm does not.

A toy causal decoder with either norm, a probe of which input positions each
output position depends on, padded batches, and the effect of the other
samples of a batch on one sample's output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tfmcourse.attention import MultiHeadAttention
from tfmcourse.masks import causal_mask
from tfmcourse.norms import SequenceBatchNorm
from tfmcourse.transformer import FeedForward


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
                        "ff": FeedForward(d_model, d_ff),
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
