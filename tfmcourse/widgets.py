"""ipywidgets explorers used by the lessons.

Each explorer is a small class holding its controls and its last computed
result, so a test can drive it from Python: set a control's ``value``, then
read ``explorer.result``. ``explorer.widget`` is what a notebook displays.
Edit a function of your own lesson; do not rewrite the whole file.
"""

from __future__ import annotations

# ---------------------------------------------------------------- lessons 05 and 07
# Figures are drawn on a matplotlib ``Figure`` (not pyplot) and shown as a PNG in an
# ``ipywidgets.Image``: no global pyplot state, identical from Python tests and in the browser.


def _figure_png(fig) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


class PositionalEncodingExplorer:
    """Pick a position and a range of columns of the sinusoid table; see the vector and
    how similar every other position's code is to it (lesson 05).

    The ``dims`` slider reads first and last column, both included (``0 – 31`` for
    ``d_model = 32``), and snaps to whole sin/cos pairs: a range always starts on a sin
    column and ends on its cos partner, so it holds at least one pair.

    ``result`` holds ``position``, ``dims`` (lo, hi) with ``hi`` excluded, ``vector`` (the
    chosen columns of ``PE[position]``), ``similarity`` (cosine similarity of those columns
    with every position) and ``nearest`` (the other position with the most similar code).
    """

    def __init__(self, max_len: int = 64, d_model: int = 32, position: int = 10):
        import ipywidgets as w

        from tfmcourse.positional import sinusoidal_positional_encoding

        self.pe = sinusoidal_positional_encoding(max_len, d_model)
        self.position = w.IntSlider(
            value=min(position, max_len - 1),
            min=0,
            max=max_len - 1,
            description="position",
            continuous_update=False,
            layout=w.Layout(width="420px"),
        )
        if d_model < 2 or d_model % 2:
            raise ValueError(f"d_model must be a positive even number, got {d_model}")
        self.dims = w.IntRangeSlider(
            value=(0, d_model - 1),
            min=0,
            max=d_model - 1,
            step=1,
            description="columns",
            continuous_update=False,
            layout=w.Layout(width="420px"),
        )
        self.summary = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([w.HBox([self.position, self.dims]), self.summary, self.image])
        self.widget.add_class("tfm-pe-explorer")
        self.result: dict = {}
        self.position.observe(self._update, names="value")
        self.dims.observe(self._update, names="value")
        self._update()

    @staticmethod
    def _whole_pairs(first: int, last: int) -> tuple[int, int]:
        """Widen an inclusive column range to whole sin/cos pairs: (3, 3) -> (2, 3)."""
        return first - first % 2, last | 1

    def compute(self) -> dict:
        import torch

        p = self.position.value
        lo, last = self._whole_pairs(*self.dims.value)
        hi = last + 1  # exclusive
        table = self.pe[:, lo:hi].double()  # (max_len, hi - lo)
        sim = torch.nn.functional.cosine_similarity(table, table[p][None, :], dim=-1)  # (max_len,)
        others = sim.clone()
        others[p] = -float("inf")
        nearest = int(others.argmax())
        return dict(
            position=p,
            dims=(lo, hi),
            vector=table[p].float(),
            similarity=sim.float(),
            nearest=nearest,
            nearest_similarity=float(sim[nearest]),
        )

    def _update(self, _change=None) -> None:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        snapped = self._whole_pairs(*self.dims.value)
        if tuple(self.dims.value) != snapped:
            self.dims.value = snapped  # observed: this change redraws
            return
        r = self.compute()
        self.result = r
        lo, hi = r["dims"]
        fig = Figure(figsize=(10, 3.2), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
        cols = range(lo, hi)
        ax1.bar(cols, r["vector"].numpy(), color=["tab:blue" if c % 2 == 0 else "tab:orange" for c in cols])
        ax1.set_ylim(-1.1, 1.1)
        ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # columns are whole numbers
        ax1.set_xlabel("column of PE (blue: sin, orange: cos)")
        ax1.set_ylabel("value")
        ax1.set_title(f"PE[{r['position']}], columns {lo}–{hi - 1}")
        ax1.grid(alpha=0.3)
        lim_lo, lim_hi = ax1.get_xlim()
        self._last_column_ticks = [t for t in ax1.get_xticks() if lim_lo <= t <= lim_hi]
        ax2.plot(range(len(r["similarity"])), r["similarity"].numpy(), marker="o", ms=2)
        ax2.axvline(r["position"], color="k", lw=0.8, ls="--")
        ax2.set_ylim(-1.05, 1.05)
        ax2.set_xlabel("position p")
        ax2.set_ylabel(f"cosine similarity with position {r['position']}")
        ax2.set_title(f"similarity on columns {lo}–{hi - 1}")
        ax2.grid(alpha=0.3)
        self.image.value = _figure_png(fig)
        self.summary.value = (
            f"<b>position {r['position']}</b>, columns {lo}–{hi - 1}: the most similar other position is "
            f"<b>{r['nearest']}</b> (cosine {r['nearest_similarity']:.3f})"
        )


class AttentionExplorer:
    """Pick a layer, a head and a query token; see which keys it attends to (lesson 07).

    ``weights`` is ``(L, H, T, S)`` (one sample; a ``(H, T, S)`` tensor is one layer);
    ``query_labels`` (T) and ``key_labels`` (S) name the tokens. ``result`` holds
    ``layer``, ``head`` (``None`` = mean over heads), ``query``, ``row`` (the query's
    weights over the keys), ``matrix`` (T, S) and ``top_key`` / ``top_label``.
    """

    def __init__(self, weights, query_labels, key_labels=None, layer_names=None):
        import ipywidgets as w
        import torch

        weights = torch.as_tensor(weights).detach().float()
        if weights.dim() == 3:
            weights = weights[None]
        if weights.dim() != 4:
            raise ValueError(f"weights must be (L, H, T, S) or (H, T, S), got shape {tuple(weights.shape)}")
        L, H, T, S = weights.shape
        key_labels = list(query_labels if key_labels is None else key_labels)
        query_labels = list(query_labels)
        if len(query_labels) != T or len(key_labels) != S:
            raise ValueError(
                f"need {T} query labels and {S} key labels, got {len(query_labels)} and {len(key_labels)}"
            )
        self.weights, self.query_labels, self.key_labels = weights, query_labels, key_labels
        names = layer_names or [f"layer {i + 1}" for i in range(L)]
        self.layer = w.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="layer")
        self.head = w.Dropdown(
            options=[(f"head {h + 1}", h) for h in range(H)] + [("mean of heads", -1)],
            value=0,
            description="head",
        )
        self.query = w.Dropdown(
            options=[(f"{t}: {lab}", t) for t, lab in enumerate(query_labels)], value=0, description="query"
        )
        self.summary = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([w.HBox([self.layer, self.head, self.query]), self.summary, self.image])
        self.widget.add_class("tfm-attention-explorer")
        self.result: dict = {}
        for c in (self.layer, self.head, self.query):
            c.observe(self._update, names="value")
        self._update()

    def compute(self) -> dict:
        layer, head, t = self.layer.value, self.head.value, self.query.value
        maps = self.weights[layer]  # (H, T, S)
        matrix = maps.mean(0) if head < 0 else maps[head]  # (T, S)
        row = matrix[t]  # (S,)
        top = int(row.argmax())
        return dict(
            layer=layer,
            head=None if head < 0 else head,
            query=t,
            row=row,
            matrix=matrix,
            top_key=top,
            top_label=self.key_labels[top],
            top_weight=float(row[top]),
        )

    def _update(self, _change=None) -> None:
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        from tfmcourse.viz import heatmap

        r = self.compute()
        self.result = r
        T, S = r["matrix"].shape
        fig = Figure(figsize=(10, 0.3 * T + 2.4), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
        who = "mean of heads" if r["head"] is None else f"head {r['head'] + 1}"
        heatmap(
            r["matrix"],
            x_labels=self.key_labels,
            y_labels=self.query_labels,
            ax=ax1,
            vmax=1.0,
            title=f"{self.layer.label}, {who}",
            xlabel="key token",
            ylabel="query token",
        )
        ax1.add_patch(Rectangle((-0.5, r["query"] - 0.5), S, 1, fill=False, ec="red", lw=2))
        ax2.bar(range(S), r["row"].numpy(), color="tab:red")
        ax2.set_xticks(
            range(S), labels=self.key_labels, rotation=90 if max(map(len, self.key_labels)) > 2 else 0
        )
        ax2.set_ylim(0, 1)
        ax2.set_xlabel("key token")
        ax2.set_ylabel("attention weight")
        ax2.set_title(f"query {r['query']}: {self.query_labels[r['query']]!r}")
        ax2.grid(alpha=0.3, axis="y")
        self.image.value = _figure_png(fig)
        self.summary.value = (
            f"{self.layer.label}, {who}: query <b>{r['query']} ({self.query_labels[r['query']]})</b> attends most "
            f"to key <b>{r['top_key']} ({r['top_label']})</b> with weight {r['top_weight']:.2f}"
        )


# ---------------------------------------------------------------- lesson 03


class NormComparisonExplorer:
    """Batch norm vs layer norm on a padded batch of sequences (lesson 03).

    Controls: ``batch_size``, ``seq_len`` (padded length T) and ``pad_fraction``
    (the share of the T positions that are padding). ``result`` holds, for
    batch norm (``bn_*``) and layer norm (``ln_*``):

    - ``*_other_samples``: mean absolute change of sample 0's real tokens when
      the other samples of the batch are redrawn;
    - ``*_pad_error``: mean absolute change of the real tokens' outputs caused by
      the pads (padded batch vs the same real tokens with pads ignored);

    and ``pad_positions`` (how many positions of the batch are pads).
    """

    C = 8  # channels / features

    def __init__(self, batch_size: int = 4, seq_len: int = 12, pad_fraction: float = 0.5):
        import ipywidgets as w

        style = dict(continuous_update=False, layout=w.Layout(width="320px"))
        self.batch_size = w.IntSlider(value=batch_size, min=2, max=64, description="batch size", **style)
        self.seq_len = w.IntSlider(value=seq_len, min=2, max=64, description="length T", **style)
        self.pad_fraction = w.FloatSlider(
            value=pad_fraction, min=0.0, max=0.9, step=0.05, description="pad fraction", **style
        )
        self.summary = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox(
            [w.HBox([self.batch_size, self.seq_len, self.pad_fraction]), self.summary, self.image]
        )
        self.widget.add_class("tfm-norm-explorer")
        self.result: dict = {}
        for control in (self.batch_size, self.seq_len, self.pad_fraction):
            control.observe(self._update, names="value")
        self._update()

    def compute(self) -> dict:
        import torch

        from tfmcourse import norms
        from tfmcourse.experiments import lesson03

        B, T, p, C = self.batch_size.value, self.seq_len.value, self.pad_fraction.value, self.C
        n_real = max(1, T - round(p * T))  # every sequence keeps at least one real token
        lengths = [n_real] * B
        x, pad = lesson03.padded_batch(lengths, T, C, seed=0)  # (B, T, C), (B, T)
        gamma, beta = torch.ones(C), torch.zeros(C)
        bn = lambda z: norms.batch_norm(z, gamma, beta)  # noqa: E731
        ln = lambda z: norms.layer_norm(z, gamma, beta)  # noqa: E731
        real = ~pad  # (B, T)
        # 1. pads: the real tokens' outputs with the pads counted vs with the pads left out
        bn_pad = (bn(x)[real] - norms.batch_norm(x[real], gamma, beta)).abs().mean()
        ln_pad = (ln(x)[real] - ln(x[real])).abs().mean()
        # 2. other samples: redraw samples 1..B-1, watch sample 0's real tokens
        g = torch.Generator().manual_seed(1)
        x2 = x.clone()
        x2[1:] = torch.where(real[1:, :, None], torch.randn(x[1:].shape, generator=g) * 1.5 + 1.0, x[1:])
        keep = real[0]
        bn_other = (bn(x2)[0][keep] - bn(x)[0][keep]).abs().mean()
        ln_other = (ln(x2)[0][keep] - ln(x)[0][keep]).abs().mean()
        return dict(
            batch_size=B,
            seq_len=T,
            pad_fraction=p,
            real_length=n_real,
            pad_positions=int(pad.sum()),
            bn_other_samples=float(bn_other),
            ln_other_samples=float(ln_other),
            bn_pad_error=float(bn_pad),
            ln_pad_error=float(ln_pad),
        )

    def _update(self, _change=None) -> None:
        from matplotlib.figure import Figure

        r = self.compute()
        self.result = r
        fig = Figure(figsize=(9, 3.0), layout="constrained")
        axes = fig.subplots(1, 2)
        panels = [
            ("other_samples", "change of sample 0's outputs\nwhen the other samples change"),
            ("pad_error", "change of the real tokens' outputs\ncaused by the pads"),
        ]
        for ax, (key, title) in zip(axes, panels):
            vals = [r[f"bn_{key}"], r[f"ln_{key}"]]
            bars = ax.bar(["batch norm", "layer norm"], vals, color=["tab:red", "tab:blue"])
            ax.bar_label(bars, fmt="%.3f")
            ax.set_ylabel("mean |Δ output| (normalised units)")
            ax.set_title(title, fontsize=10)
            ax.set_ylim(0, max(0.05, 1.25 * max(vals)))
            ax.grid(axis="y", alpha=0.3)
        self.image.value = _figure_png(fig)
        self.summary.value = (
            f"batch of <b>{r['batch_size']}</b> sequences, T = <b>{r['seq_len']}</b>, "
            f"{r['real_length']} real tokens each, <b>{r['pad_positions']}</b> pad positions in the batch. "
            f"Layer norm: {r['ln_other_samples']:.3g} and {r['ln_pad_error']:.3g} (always 0)."
        )
