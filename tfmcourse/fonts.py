"""Hangul in plots: register the NanumGothic font that ``koreanize-matplotlib`` ships.

matplotlib's default font (DejaVu Sans) has no Hangul glyphs, so "2021년 9월 13일"
renders as empty boxes. The font file comes with the ``koreanize-matplotlib``
package; that package changes matplotlib's global settings as soon as it is
imported, so the course never imports it: it only reads the font file from the
package's folder.

Nothing happens at import of this module. :func:`use_hangul_font` registers the
font and adds it *after* the current font family (matplotlib falls back along
``font.family`` glyph by glyph), so Latin letters, digits and the minus sign keep
their usual look and only Hangul is drawn with NanumGothic. :func:`hangul_rc` gives the same settings for ``plt.rc_context``
when a single figure should carry Korean text.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager

FONT_PACKAGE = "koreanize_matplotlib"
FONT_FILE = "NanumGothic.ttf"
FONT_FAMILY = "NanumGothic"


def hangul_font_path() -> Path:
    """The NanumGothic font file, found without importing the package that ships it."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the Hangul font comes with the '{FONT_PACKAGE.replace('_', '-')}' package, which is not "
            "installed: pip install -r requirements.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / FONT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall koreanize-matplotlib")
    return path


def register_hangul_font() -> str:
    """Make NanumGothic known to matplotlib (once); return its family name."""
    path = hangul_font_path()
    if not any(Path(f.fname) == path for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def hangul_rc() -> dict:
    """rcParams that draw Hangul with NanumGothic and everything else as before."""
    family = register_hangul_font()
    return {"font.family": [f for f in mpl.rcParams["font.family"] if f != family] + [family]}


def use_hangul_font() -> str:
    """Let every later figure of this kernel draw Hangul; return the font's family name."""
    mpl.rcParams.update(hangul_rc())
    return register_hangul_font()
