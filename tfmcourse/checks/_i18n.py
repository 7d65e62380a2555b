"""The language checks speak: English, or Korean from the catalogue ``po/ko/checks.po``.

Every message a learner reads from a check — what went wrong, a named mistake, a
hint, the not-attempted line, the ✓ line — is written in English in the code and
passed through :func:`tr` when it is shown. The English text is the ``msgid`` of a
gettext catalogue; ``tr`` returns its translation in the current language (the
English text itself when there is none) with the ``{fields}`` filled in.

Literals that a helper translates where it shows them (``what=``, ``case=``,
``hint=``, a ``require`` message, a ✓ detail, case labels marked with
:func:`N_`) are msgids too. Changing or adding an English message makes
``tests/test_checks_i18n.py`` name the msgid that lacks a reviewed Korean text
in ``po/ko/checks.po`` (any PO editor can add it); a catalogue entry no code
uses fails the same test. Messages never change a verdict: checks decide on
values, never on the text of a message.

The current language belongs to the kernel process only: a Korean exercise
notebook starts with ``use_language("ko")``, and a grader renders one report in
a language with ``with language("ko"): …``. Nothing is written to disk.

>>> with language("ko"):
...     tr("{name}: correct", name="causal_mask")
'causal_mask: 정답입니다'
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import polib

LANGUAGES = ("en", "ko")
CATALOGUE_DIR = Path(__file__).resolve().parent.parent.parent / "po"

_current = "en"

# the first code line of a Korean exercise notebook (added by the editions build)
SETUP_LINE = 'from tfmcourse.checks import use_language; use_language("ko")'
_SETUP = re.compile(r"""\buse_language\(\s*["'](?P<lang>[a-z]{2})["']\s*\)""")


def catalogue_path(lang: str) -> Path:
    return CATALOGUE_DIR / lang / "checks.po"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """``{English msgid: translation}`` of a language: reviewed entries only (no fuzzy, no empty)."""
    if lang == "en":
        return {}
    po = polib.pofile(str(catalogue_path(lang)))
    return {e.msgid: e.msgstr for e in po if e.msgstr and "fuzzy" not in e.flags and not e.obsolete}


def _check(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: checks speak {', '.join(LANGUAGES)}")
    return lang


def use_language(lang: str) -> None:
    """Make every check of this kernel speak ``lang`` (``"en"`` or ``"ko"``)."""
    global _current
    _current = _check(lang)


def current_language() -> str:
    return _current


@contextlib.contextmanager
def language(lang: str) -> Iterator[str]:
    """Speak ``lang`` inside the block, then the language before it again (for graders)."""
    global _current
    before, _current = _current, _check(lang)
    try:
        yield lang
    finally:
        _current = before


def tr(msgid: str, **fields: object) -> str:
    """``msgid`` in the current language, its ``{fields}`` filled in (``str.format`` syntax)."""
    text = catalogue(_current).get(msgid, msgid)
    return text.format(**fields) if fields else text


def N_(msgid: str) -> str:
    """Mark a literal for translation where it is shown (by a helper that calls :func:`tr`)."""
    return msgid


def notebook_language(nb=None, path: str | Path | None = None) -> str:
    """The language of a notebook: from its setup line ``use_language("ko")``, else its path.

    ``nb`` is a notebook (nbformat node); without a setup line, the edition named
    in its metadata, else its path decides: ``…/ko/exercises/…`` (the Korean
    edition, or a learner's ``work/ko/`` workspace) is Korean; anything else is
    English.
    """
    if nb is not None:
        for cell in nb.cells:
            if cell.cell_type == "code":
                m = _SETUP.search(cell.source)
                if m and m.group("lang") in LANGUAGES:
                    return m.group("lang")
        edition = nb.metadata.get("tfmcourse", {}).get("edition", {}).get("language")
        if edition in LANGUAGES:
            return edition
    if path is not None:
        parts = Path(path).resolve().parts
        for folder, sub in itertools.pairwise(parts):
            if folder in LANGUAGES and sub in ("notebooks", "exercises", "solutions"):
                return folder
    return "en"
