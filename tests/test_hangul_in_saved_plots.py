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
    """The highest normalised cross-correlation of ``template`` over ``image`` (1.0: identical pixels)."""
    h, w = template.shape
    if image.shape[0] < h or image.shape[1] < w:
        return -1.0
    windows = np.lib.stride_tricks.sliding_window_view(image, (h, w))
    t = (template - template.mean()) / (template.std() + 1e-9)
    win = windows - windows.mean(axis=(-2, -1), keepdims=True)
    win = win / (win.std(axis=(-2, -1), keepdims=True) + 1e-9)
    return float((win * t).mean(axis=(-2, -1)).max())


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
