"""No Hangul drawn as empty boxes in the figures a learner sees in a lesson's saved outputs.

The figure's PNG (exactly what JupyterLab shows) is searched for its own title drawn two ways:
with the course's Hangul font and with matplotlib's default font, whose missing glyphs are boxes
("tofu"). The title must match the Hangul rendering closely, and better than the tofu one.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from tfmcourse import fonts, nbtools

ROOT = Path(__file__).resolve().parent.parent
LESSON_09 = ROOT / "ko" / "notebooks" / "09_training_and_inference.ipynb"
TITLE = "last decoder layer: 2021년 9월 13일 월요일"  # the left heatmap's title in lesson 09
TOFU = {"font.family": ["DejaVu Sans"]}


def _grey(png: bytes) -> np.ndarray:
    image = plt.imread(io.BytesIO(png), format="png")[..., :3]
    return image.mean(-1)


def _drawn(text: str, rc: dict, fontsize: float = 12, dpi: int = 100) -> np.ndarray:
    """``text`` as matplotlib draws it, cropped to its ink, on white."""
    with plt.rc_context(rc):
        fig = plt.figure(figsize=(8, 0.6), dpi=dpi)
        fig.text(0.01, 0.3, text, fontsize=fontsize)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
        plt.close(fig)
    grey = _grey(buf.getvalue())
    rows, cols = np.nonzero(grey < 0.9)
    return grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def best_match(image: np.ndarray, template: np.ndarray) -> float:
    """The highest normalised cross-correlation of ``template`` over ``image`` (1.0: identical pixels).

    At every offset, the mean over the window of (window - its mean) / (its std + 1e-9) times the
    standardised template; computed with an FFT and running sums rather than window by window
    (``test_best_match_is_the_window_by_window_correlation`` compares the two).
    """
    h, w = template.shape
    if image.shape[0] < h or image.shape[1] < w:
        return -1.0
    x, template = image.astype(np.float64), template.astype(np.float64)
    t = (template - template.mean()) / (template.std() + 1e-9)
    shape = (x.shape[0] + h - 1, x.shape[1] + w - 1)
    full = np.fft.irfft2(np.fft.rfft2(x, shape) * np.fft.rfft2(t[::-1, ::-1], shape), shape)
    products = full[h - 1 : x.shape[0], w - 1 : x.shape[1]]  # sum of window * t at each offset
    n = h * w
    mean = _window_sums(x, h, w) / n
    var = _window_sums(x * x, h, w) / n - mean**2
    scores = (products - mean * t.sum()) / (n * (np.sqrt(np.maximum(var, 0.0)) + 1e-9))
    # a window of one grey scores 0 (its pixels minus their mean are all 0); PNG greys differ by at
    # least 1/765, so any other window's variance is far above rounding's 1e-12
    return float(np.where(var > 1e-12, scores, 0.0).max())


def _window_sums(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """The sum of every h × w window of ``x`` (one per offset where it fits)."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def _best_match_window_by_window(image: np.ndarray, template: np.ndarray) -> float:
    h, w = template.shape
    windows = np.lib.stride_tricks.sliding_window_view(image, (h, w))
    t = (template - template.mean()) / (template.std() + 1e-9)
    win = windows - windows.mean(axis=(-2, -1), keepdims=True)
    win = win / (win.std(axis=(-2, -1), keepdims=True) + 1e-9)
    return float((win * t).mean(axis=(-2, -1)).max())


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_best_match_is_the_window_by_window_correlation():
    title = "2021년 9월"
    template = _drawn(title, fonts.hangul_rc())
    for rc in (fonts.hangul_rc(), TOFU):
        image = _figure(title, rc)[:60, :260]  # the title and some axes: small enough to go window by window
        assert best_match(image, template) == pytest.approx(
            _best_match_window_by_window(image, template), abs=1e-5
        )
    noise = np.random.default_rng(0).random((40, 50), dtype=np.float32)
    assert best_match(noise, noise[5:20, 10:40]) == pytest.approx(1.0, abs=1e-6)
    assert best_match(noise, noise[5:20, 10:40]) == pytest.approx(
        _best_match_window_by_window(noise, noise[5:20, 10:40]), abs=1e-6
    )


def hangul_drawn_not_boxes(image: np.ndarray, text: str) -> tuple[bool, float, float]:
    """Whether ``text`` appears in ``image`` with Hangul glyphs rather than boxes; and both scores."""
    hangul = best_match(image, _drawn(text, fonts.hangul_rc()))
    tofu = best_match(image, _drawn(text, TOFU))
    return hangul > 0.8 and hangul > tofu + 0.1, hangul, tofu


def _figure(title: str, rc: dict) -> np.ndarray:
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        ax.imshow(np.random.default_rng(0).random((5, 8)))
        ax.set_title(title)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    return _grey(buf.getvalue())


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # the boxes, drawn on purpose
def test_the_check_tells_hangul_glyphs_from_boxes_and_from_romanisation():
    ok, hangul, tofu = hangul_drawn_not_boxes(_figure(TITLE, fonts.hangul_rc()), TITLE)
    assert ok, (hangul, tofu)
    for wrong in (_figure(TITLE, TOFU), _figure("last decoder layer: 2021nyeon 9wol 13il wolyoil", TOFU)):
        ok, hangul, tofu = hangul_drawn_not_boxes(wrong, TITLE)
        assert not ok, (hangul, tofu)


def _saved_figure(path: Path, marker: str) -> np.ndarray:
    nb = nbtools.read(path)
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
    png = next(o.data["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {}))
    return _grey(base64.b64decode(png))


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_lesson_09_cross_attention_heatmap_draws_hangul_not_boxes():
    image = _saved_figure(LESSON_09, "def cross_attention")
    ok, hangul, tofu = hangul_drawn_not_boxes(image[: image.shape[0] // 8, : image.shape[1] // 2], TITLE)
    assert ok, f"title matches the Hangul rendering at {hangul:.2f}, the boxes at {tofu:.2f}"
