"""Plots shared by the lessons. Every function returns the matplotlib ``Axes`` it drew on."""

from __future__ import annotations

from collections.abc import Sequence

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
    colorbar_label: str = "",
):
    """An attention-weights (or any matrix) heatmap with optional token labels.

    A colour bar (on by default) shows what the colours mean; ``colorbar_label`` names its
    quantity, e.g. ``"attention weight"``. Pass ``colorbar=False`` only for categorical colours.
    """
    w = _np(weights)
    if w.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2, 0.45 * w.shape[0] + 1.5))
    im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    if x_labels is not None:
        ax.set_xticks(
            range(len(x_labels)),
            labels=list(x_labels),
            rotation=90 if max(map(len, x_labels), default=0) > 2 else 0,
        )
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), labels=list(y_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if colorbar_label:
            cbar.set_label(colorbar_label)
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


def plot_history(
    history, *, ax=None, title: str = "training loss", label: str | None = None, window: int = 20
):
    """Raw (faint) and smoothed training loss of a :class:`tfmcourse.train.History`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    (line,) = ax.plot(history.step, history.loss, alpha=0.25)
    ax.plot(history.step, history.smoothed_loss(window), color=line.get_color(), label=label)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss (cross-entropy, nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if label:
        ax.legend()
    return ax


# ---------------------------------------------------------------- lesson 08: the Transformer, drawn


def transformer_diagram(
    num_encoder_layers: int = 2, num_decoder_layers: int = 2, *, norm_first: bool = False, ax=None
):
    """What goes where in an encoder-decoder Transformer, drawn with boxes and arrows.

    Every encoder and decoder layer is drawn, so the picture shows that the
    encoder's final output (the memory) reaches the cross-attention of *every*
    decoder layer, while each decoder self-attention only sees the target side.
    Curved grey arrows are the residual connections (the "add" of add & norm).
    """
    from matplotlib.patches import FancyBboxPatch

    n_enc, n_dec = int(num_encoder_layers), int(num_decoder_layers)
    sub_h, gap, pad, between = 0.8, 0.3, 0.2, 0.4
    enc_layer_h = 2 * sub_h + gap + 2 * pad
    dec_layer_h = 3 * sub_h + 2 * gap + 2 * pad
    base = 2.4  # y where the first layer starts (tokens and embeddings below)
    extra = 0.65 if norm_first else 0.0
    height = base + max(n_enc * (enc_layer_h + between), n_dec * (dec_layer_h + between)) + extra + 1.3
    if ax is None:
        _, ax = plt.subplots(figsize=(11, max(6.0, 0.6 * height)))
    ax.set_xlim(0, 14)
    ax.set_ylim(-0.2, height)
    ax.axis("off")
    colours = {
        "self": "#f6c9a8",
        "masked": "#f4a582",
        "cross": "#92c5de",
        "ff": "#b8e186",
        "embed": "#e0e0e0",
        "out": "#d8b2e0",
    }

    def box(x, y, w, h, text, colour, fontsize=7.5, lw=1.0):
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0.02", facecolor=colour, edgecolor="#333333", lw=lw
            )
        )
        if text:
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)

    def arrow(x0, y0, x1, y1, colour="#333333", lw=1.2, style="arc3"):
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(
                arrowstyle="-|>", color=colour, lw=lw, shrinkA=0, shrinkB=0, connectionstyle=style
            ),
        )

    def residual(x, y0, y1):
        arrow(x, y0, x, y1, colour="#888888", lw=1.0, style="arc3,rad=-0.45")

    ln = ""
    add = "\nof LayerNorm(input) → add the residual" if norm_first else "\n→ add the residual → LayerNorm"

    def stack(x, w, n, layer_h, subs, label, side):
        y = base
        arrow(x + w / 2, 1.75, x + w / 2, y)
        marks = []
        for i in range(n):
            box(x - 0.4, y, w + 0.55, layer_h, "", "#fafafa", lw=1.4)
            lx, ha = (x - 0.55, "right") if side == "left" else (x + w + 0.3, "left")
            ax.text(lx, y + layer_h / 2, f"{label}\nlayer {i + 1}", ha=ha, va="center", fontsize=8)
            sy = y + pad
            for j, (text, colour) in enumerate(subs):
                box(x, sy, w, sub_h, text, colour)
                residual(x - 0.02, sy - 0.13, sy + sub_h + 0.13)
                marks.append((j, sy + sub_h / 2))
                if j < len(subs) - 1:
                    arrow(x + w / 2, sy + sub_h, x + w / 2, sy + sub_h + gap)
                sy += sub_h + gap
            y += layer_h + between
            if i < n - 1:
                arrow(x + w / 2, y - between, x + w / 2, y)
        top = y - between
        if norm_first:
            box(x, top + 0.2, w, 0.45, "final LayerNorm (pre-LN stacks)", "white")
            arrow(x + w / 2, top, x + w / 2, top + 0.2)
            top += 0.65
        return top, marks

    # ---- encoder (left)
    ex, ew = 1.5, 4.1
    box(ex, 0.0, ew, 0.55, "source tokens  (B, S)", "white")
    box(ex, 0.95, ew, 0.8, "embedding × √d_model\n+ positional encoding", colours["embed"])
    arrow(ex + ew / 2, 0.55, ex + ew / 2, 0.95)
    top, _ = stack(
        ex,
        ew,
        n_enc,
        enc_layer_h,
        [
            (f"{ln}self-attention (Q, K, V = x; src pad mask){add}", colours["self"]),
            (f"{ln}feed-forward (each position alone){add}", colours["ff"]),
        ],
        "encoder",
        "left",
    )
    mem_y = top + 0.45
    arrow(ex + ew / 2, top, ex + ew / 2, mem_y - 0.05)
    ax.text(
        ex + ew / 2,
        mem_y,
        "memory  (B, S, d_model)",
        ha="center",
        va="bottom",
        fontsize=9,
        fontweight="bold",
        color="#2166ac",
    )
    # ---- decoder (right)
    dx, dw = 7.2, 4.9
    box(dx, 0.0, dw, 0.55, "target tokens, shifted right  (B, T)", "white")
    box(dx, 0.95, dw, 0.8, "embedding × √d_model\n+ positional encoding", colours["embed"])
    arrow(dx + dw / 2, 0.55, dx + dw / 2, 0.95)
    top_d, marks = stack(
        dx,
        dw,
        n_dec,
        dec_layer_h,
        [
            (f"{ln}masked self-attention (Q, K, V = y; causal + tgt pad){add}", colours["masked"]),
            (f"{ln}cross-attention (Q = y; K, V = memory; src pad){add}", colours["cross"]),
            (f"{ln}feed-forward (each position alone){add}", colours["ff"]),
        ],
        "decoder",
        "right",
    )
    box(
        dx,
        top_d + 0.4,
        dw,
        0.7,
        "linear → softmax over the target vocabulary\nlogits (B, T, V)",
        colours["out"],
    )
    arrow(dx + dw / 2, top_d, dx + dw / 2, top_d + 0.4)
    # ---- the memory bus: the encoder's last output feeds every cross-attention
    cross_ys = [yy for j, yy in marks if j == 1]
    bus_x = 6.55
    ax.plot([ex + ew / 2 + 1.6, bus_x], [mem_y + 0.12, mem_y + 0.12], color="#2166ac", lw=2)
    ax.plot(
        [bus_x, bus_x],
        [min(cross_ys + [mem_y + 0.12]), max(cross_ys + [mem_y + 0.12])],
        color="#2166ac",
        lw=2,
    )
    for cy in cross_ys:
        arrow(bus_x, cy, dx, cy, colour="#2166ac", lw=2)
    ax.text(
        bus_x - 0.12,
        (min(cross_ys) + mem_y) / 2 - 0.3,
        "same memory → every decoder layer",
        rotation=90,
        ha="right",
        va="center",
        fontsize=7.5,
        color="#2166ac",
    )
    ax.set_title(
        ("pre-LN" if norm_first else "post-LN (the paper)")
        + f" Transformer: {n_enc} encoder and {n_dec} decoder layers, each with its own parameters",
        fontsize=10,
    )
    return ax


# ---- lessons 01-02 (seq2seq): accuracy by source length, with the held-out lengths shaded


def length_curves(
    lengths,
    series: dict[str, Sequence[float]],
    *,
    trained_max: int | None = None,
    ax=None,
    ylabel: str = "token accuracy (greedy decoding)",
    title: str = "",
):
    """Accuracy-vs-source-length curves; lengths above ``trained_max`` are shaded as held out."""
    ax = curves(lengths, series, ax=ax, xlabel="source length (tokens)", ylabel=ylabel, title=title)
    if trained_max is not None and max(lengths) > trained_max:
        ax.axvspan(trained_max + 0.5, max(lengths) + 0.5, color="grey", alpha=0.15, lw=0)
        ax.text(trained_max + 0.7, 0.04, "held-out lengths\n(never trained on)", fontsize=8, color="dimgray")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(list(lengths))
    return ax
