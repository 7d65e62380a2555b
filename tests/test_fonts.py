"""Hangul in plots: the course's own font registration, without koreanize-matplotlib's side effects."""

from __future__ import annotations

import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

from tfmcourse import fonts

KOREAN = "2021년 9월 13일 − 어텐션"


def _missing_glyph_warnings(rc: dict) -> list[str]:
    with plt.rc_context(rc), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title(KOREAN)
        ax.set_xticks([0, 1], ["년", "월"])
        fig.canvas.draw()
        plt.close(fig)
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def test_the_default_font_has_no_hangul_so_the_warning_check_can_fail():
    assert _missing_glyph_warnings({"font.family": ["sans-serif"]}), "DejaVu Sans drew Hangul?"


def test_hangul_renders_without_missing_glyphs_with_the_course_font():
    assert _missing_glyph_warnings(fonts.hangul_rc()) == []


def test_hangul_glyphs_come_from_nanumgothic_and_latin_from_the_usual_font():
    path = fonts.hangul_font_path()
    font = FT2Font(str(path))
    assert all(font.get_char_index(ord(ch)) != 0 for ch in "년월일어텐션")
    with plt.rc_context(fonts.hangul_rc()):
        prop = font_manager.FontProperties(family=matplotlib.rcParams["font.family"])
        found = font_manager.fontManager._find_fonts_by_props(prop)
    names = [FT2Font(str(f)).family_name for f in found]
    assert names == ["DejaVu Sans", "NanumGothic"], names


def test_hangul_rc_is_idempotent_and_leaves_global_settings_alone():
    before = list(matplotlib.rcParams["font.family"])
    rc1, rc2 = fonts.hangul_rc(), fonts.hangul_rc()
    assert rc1 == rc2 and rc1["font.family"].count("NanumGothic") == 1
    assert matplotlib.rcParams["font.family"] == before


def test_use_hangul_font_changes_this_process_only_when_called():
    code = (
        "import matplotlib as mpl, tfmcourse, tfmcourse.fonts as f\n"
        "assert 'NanumGothic' not in mpl.rcParams['font.family'], 'import changed rcParams'\n"
        "assert f.use_hangul_font() == 'NanumGothic'\n"
        "assert 'NanumGothic' in mpl.rcParams['font.family']\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_missing_font_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fonts, "FONT_PACKAGE", "no_such_font_package")
    with pytest.raises(FileNotFoundError, match=r"pip install -r requirements\.txt"):
        fonts.hangul_font_path()


def test_a_cross_attention_heatmap_with_hangul_ticks_renders_every_glyph():
    """What lesson 09 draws: a Korean date as the source tokens of a cross-attention map."""
    import torch

    from tfmcourse import viz

    tokens = list("2021년 9월 13일 월요일")
    weights = torch.softmax(torch.randn(5, len(tokens), generator=torch.Generator().manual_seed(0)), -1)
    with plt.rc_context(fonts.hangul_rc()), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ax = viz.heatmap(weights, x_labels=tokens, title="".join(tokens))
        ax.figure.canvas.draw()
        plt.close(ax.figure)
    assert not [w for w in caught if "missing from" in str(w.message)]
