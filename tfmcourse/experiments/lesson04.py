"""Lesson 04's experiments: deep stacks with and without residual connections, and how to measure them.

Per-layer gradient norms, Jacobian singular values, post-LN vs pre-LN stacks
at initialisation, and a linear probe of how much position information
survives a stack of self-attention layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tfmcourse.attention import MultiHeadAttention
from tfmcourse.residual import residual_sublayer
from tfmcourse.transformer import FeedForward

# ----------------------------------------------------------------------------- deep stacks


class DeepStack(nn.Module):
    """``depth`` blocks ``f(x) = act(W x + b)`` applied as ``x ← x + f(x)`` (residual) or ``x ← f(x)`` (plain).

    No normalisation, PyTorch's default ``nn.Linear`` initialisation, and a
    linear read-out ``head`` to ``d_out`` outputs.

    Shape:
        x ``(N, d_in)`` → ``(N, d_out)``.
    """

    def __init__(
        self,
        depth: int,
        width: int = 64,
        *,
        residual: bool,
        d_in: int | None = None,
        d_out: int | None = None,
        activation: str = "tanh",
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        self.residual = residual
        self.embed = nn.Linear(d_in, width) if d_in is not None else nn.Identity()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), acts[activation]()) for _ in range(depth)
        )
        self.head = nn.Linear(width, d_out) if d_out is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)  # (N, width)
        for f in self.blocks:
            x = x + f(x) if self.residual else f(x)  # (N, width)
        return self.head(x)


def block_weight_grad_norms(blocks: nn.ModuleList | list, loss: Tensor) -> Tensor:
    """Back-propagate ``loss`` and return, per block, the norm of its first ``nn.Linear``'s weight gradient.

    Shape:
        returns ``(len(blocks),)``.
    """
    linears = [next(m for m in blk.modules() if isinstance(m, nn.Linear)) for blk in blocks]
    grads = torch.autograd.grad(loss, [lin.weight for lin in linears])
    return torch.stack([g.norm() for g in grads])


def stack_grad_norms(model: nn.Module, x: Tensor, *, seed: int = 0) -> Tensor:
    """Per-block weight-gradient norms of ``model.blocks`` at its current weights.

    The loss is the mean squared distance of the output to a random target,
    so no block is special.

    Shape:
        x ``(N, ...)``; returns ``(len(model.blocks),)``.
    """
    g = torch.Generator().manual_seed(seed)
    out = model(x)
    target = torch.randn(out.shape, generator=g)
    loss = ((out - target) ** 2).mean()
    return block_weight_grad_norms(model.blocks, loss)


def jacobian_singular_values(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Singular values of the Jacobian of ``f`` at a single point ``x``, largest first.

    Shape:
        x ``(d,)``; ``f`` maps ``(d,)`` → ``(d,)``; returns ``(d,)``.
    """
    J = torch.autograd.functional.jacobian(f, x)  # (d, d)
    return torch.linalg.svdvals(J)


# ----------------------------------------------------------------------------- post-LN vs pre-LN


class SelfAttentionSublayer(nn.Module):
    """Self-attention as a one-argument sub-layer: ``attn(x, x, x)``, optionally with a mask."""

    def __init__(self, d_model: int, n_heads: int, attn_mask: Tensor | None = None):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.attn_mask = attn_mask

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x, x, x, attn_mask=self.attn_mask)


class NormedResidualStack(nn.Module):
    """``n_layers`` Transformer-style layers (self-attention then feed-forward sub-layer), each
    wrapped by :func:`residual_sublayer` with its own ``nn.LayerNorm``.

    ``norm_first=True`` (pre-LN) adds the final ``nn.LayerNorm`` that pre-LN
    models put after the last layer (Xiong et al. 2020). ``attention=False``
    keeps only the feed-forward sub-layers. ``blocks`` lists the feed-forward
    sub-layers, whose gradients :func:`stack_grad_norms` measures.

    Shape:
        x ``(B, T, D)`` → ``(B, T, D)``.
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int = 64,
        d_ff: int = 128,
        n_heads: int = 4,
        *,
        norm_first: bool,
        attention: bool = True,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.attn = (
            nn.ModuleList(SelfAttentionSublayer(d_model, n_heads) for _ in range(n_layers))
            if attention
            else None
        )
        self.norm_attn = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers)) if attention else None
        self.blocks = nn.ModuleList(FeedForward(d_model, d_ff) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for i, (ff, norm) in enumerate(zip(self.blocks, self.norms)):
            if self.attn is not None:
                x = residual_sublayer(x, self.attn[i], self.norm_attn[i], norm_first=self.norm_first)
            x = residual_sublayer(x, ff, norm, norm_first=self.norm_first)  # (B, T, D)
        return self.final_norm(x)


# ----------------------------------------------------------------------------- position probe


class AttentionStack(nn.Module):
    """A stack of random self-attention sub-layers, each followed by a layer norm, with or without
    the residual path: ``norm(x + attn(x))`` (post-LN) or ``norm(attn(x))``.

    Shape:
        x ``(B, T, D)`` → ``(B, T, D)``.
    """

    def __init__(self, n_layers: int, d_model: int = 32, n_heads: int = 4, *, residual: bool):
        super().__init__()
        self.residual = residual
        self.blocks = nn.ModuleList(SelfAttentionSublayer(d_model, n_heads) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))

    def forward(self, x: Tensor, n_layers: int | None = None) -> Tensor:
        for attn, norm in list(zip(self.blocks, self.norms))[:n_layers]:
            x = residual_sublayer(x, attn, norm) if self.residual else norm(attn(x))  # (B, T, D)
        return x


def linear_probe_accuracy(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, n_classes: int, ridge: float = 1e-3
) -> float:
    """Fit a linear classifier by ridge-regularised least squares on one-hot labels; test accuracy.

    A closed-form probe: no training loop, deterministic, and it only asks
    whether the labels are *linearly* readable from the features.

    Shape:
        train_x ``(N, D)``, train_y ``(N,)`` long, test_x ``(M, D)``, test_y ``(M,)``; returns a float in [0, 1].
    """

    def design(z: Tensor) -> Tensor:
        return torch.cat([z.double(), torch.ones(z.shape[0], 1, dtype=torch.float64)], dim=1)  # (N, D+1)

    X = design(train_x)
    Y = nn.functional.one_hot(train_y, n_classes).double()  # (N, K)
    A = X.T @ X + ridge * X.shape[0] * torch.eye(X.shape[1], dtype=torch.float64)
    W = torch.linalg.solve(A, X.T @ Y)  # (D+1, K)
    pred = (design(test_x) @ W).argmax(dim=1)
    return float((pred == test_y).double().mean())


def position_probe(
    features_fn: Callable[[Tensor], Tensor],
    embed: nn.Embedding,
    pos: Tensor,
    *,
    n_train: int = 200,
    n_test: int = 100,
    seed: int = 0,
) -> float:
    """Accuracy of a linear probe that reads each token's *position* from its output features.

    Random token sequences are embedded, the (fixed) position vectors ``pos``
    added, the result passed through ``features_fn``; the probe is fitted on
    ``n_train`` sequences and scored on ``n_test`` others. Chance is ``1/T``.

    Shape:
        pos ``(T, D)``; ``features_fn`` maps ``(B, T, D)`` → ``(B, T, D)``.
    """
    T, D = pos.shape
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, embed.num_embeddings, (n_train + n_test, T), generator=g)
    with torch.no_grad():
        h = features_fn(embed(tokens) + pos)  # (N, T, D)
    y = torch.arange(T).expand(n_train + n_test, T)  # (N, T)
    tr, te = slice(0, n_train), slice(n_train, None)
    return linear_probe_accuracy(
        h[tr].reshape(-1, D), y[tr].reshape(-1), h[te].reshape(-1, D), y[te].reshape(-1), T
    )
