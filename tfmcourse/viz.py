"""Plots shared by the lessons. Every function returns the matplotlib ``Axes`` it drew on."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def heatmap(
    weights,
    *,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax=None,
    title: str = "",
    xlabel: str = "key / source position",
    ylabel: str = "query / target position",
    cmap: str = "viridis",
    vmin: float | None = 0.0,
    vmax: float | None = None,
    colorbar: bool = True,
):
    """An attention-weights (or any matrix) heatmap with optional token labels."""
    w = _np(weights)
    if w.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2, 0.45 * w.shape[0] + 1.5))
    im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), labels=list(x_labels), rotation=90 if max(map(len, x_labels), default=0) > 2 else 0)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), labels=list(y_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def curves(
    xs,
    series: dict[str, Sequence[float]],
    *,
    ax=None,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
    logx: bool = False,
    markers: bool = True,
):
    """Several labelled curves over the same x values (accuracy vs length, grad norm vs depth, …)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    for label, ys in series.items():
        ax.plot(_np(xs), _np(ys), marker="o" if markers else None, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return ax


def plot_history(history, *, ax=None, title: str = "training loss", label: str | None = None, window: int = 20):
    """Raw (faint) and smoothed training loss of a :class:`tfmcourse.train.History`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    line, = ax.plot(history.step, history.loss, alpha=0.25)
    ax.plot(history.step, history.smoothed_loss(window), color=line.get_color(), label=label)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss (cross-entropy, nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if label:
        ax.legend()
    return ax
