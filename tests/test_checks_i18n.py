"""Check messages in English and Korean: every message has a reviewed Korean text, and checks speak it."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import nbformat
import polib
import pytest
import torch

from tfmcourse.checks import (
    HINTS,
    MISTAKES,
    CheckFailed,
    _i18n,
    check_scaled_dot_product_attention,
    current_language,
    language,
    notebook_language,
    use_language,
)
from tfmcourse.checks._display import failure_lines
from tfmcourse.checks.hints import next_hint

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "tfmcourse" / "checks"
CATALOGUE = ROOT / "po" / "ko" / "checks.po"  # also the progress table's texts

# keyword arguments and positional slots whose literal strings are translated where they are shown
LITERAL_KEYWORDS = {"what", "case", "hint"}
LITERAL_POSITIONS = {"require": 2, "passed": 1}


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def code_msgids() -> dict[str, str]:
    """Every msgid the package's code uses, with where.

    That is ``tr("…")``, ``N_("…")`` (a literal marked for translation where it is shown) and the
    literal arguments that the check helpers translate (``what=``, ``case=``, ``hint=``, …).
    """
    found: dict[str, str] = {}
    for path in [*sorted(CHECKS.glob("*.py")), ROOT / "tfmcourse" / "progress.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            where = f"{path.name}:{node.lineno}"
            if func in ("tr", "N_") and path.name != "_i18n.py":
                arg = node.args[0]
                if isinstance(arg, (ast.Name, ast.Attribute, ast.Subscript)):
                    continue  # a literal passed in from elsewhere (``what=``, a mistake, a hint): found there
                text = _literal(arg)
                assert text is not None, (
                    f"{where}: tr() needs a literal English text, got {ast.unparse(node)}"
                )
                found[text] = where
            if func in LITERAL_POSITIONS and len(node.args) > LITERAL_POSITIONS[func]:
                text = _literal(node.args[LITERAL_POSITIONS[func]])
                if text:
                    found[text] = where
            for kw in node.keywords:
                if kw.arg in LITERAL_KEYWORDS and (text := _literal(kw.value)):
                    found[text] = where
    return found


def all_msgids() -> dict[str, str]:
    found = code_msgids()
    for name, mistakes in MISTAKES.items():
        for m in mistakes:
            found[m.description] = f"mistake of {name}"
    for name, hints in HINTS.items():
        for i, h in enumerate(hints, 1):
            found[h] = f"hint {i} of {name}"
    return found


def _fields(text: str) -> set[str]:
    return {
        f"{name}!{conv}:{spec}" for _, name, spec, conv in string.Formatter().parse(text) if name is not None
    }


@pytest.fixture(scope="module")
def catalogue() -> polib.POFile:
    return polib.pofile(str(CATALOGUE))


def test_every_check_message_has_a_reviewed_korean_text(catalogue):
    entries = {e.msgid: e for e in catalogue if not e.obsolete}
    missing = [f"{where}: {msgid!r}" for msgid, where in all_msgids().items() if msgid not in entries]
    assert not missing, f"{len(missing)} messages have no Korean text:\n" + "\n".join(missing[:20])
    untranslated = [e.msgid for e in entries.values() if not e.msgstr.strip()]
    assert not untranslated, f"entries without msgstr: {untranslated[:5]}"
    fuzzy = [e.msgid for e in entries.values() if "fuzzy" in e.flags]
    assert not fuzzy, f"fuzzy entries (English changed, review the Korean): {fuzzy[:5]}"


def test_the_catalogue_has_no_entry_that_no_code_uses(catalogue):
    used = all_msgids()
    unused = [e.msgid for e in catalogue if not e.obsolete and e.msgid not in used]
    assert not unused, f"{len(unused)} catalogue entries are not used by any check: {unused[:5]}"


def test_korean_texts_keep_the_english_placeholders_and_code(catalogue):
    for e in catalogue:
        if e.obsolete:
            continue
        assert _fields(e.msgstr) == _fields(e.msgid), f"placeholders differ in {e.msgid!r}"
        for code in re.findall(r"`[^`]+`", e.msgid):
            assert code in e.msgstr, f"inline code {code} lost in the Korean text of {e.msgid!r}"
        if "code" in (e.tcomment or ""):  # a hint that is code: kept (its comments may be translated)
            assert e.msgstr.replace("#", "\n#").splitlines()[0] == e.msgid.replace("#", "\n#").splitlines()[0]
        else:
            assert re.search(r"[가-힣]", e.msgstr), f"no Korean in the translation of {e.msgid!r}"


def test_korean_texts_use_the_glossary_terms(catalogue):
    from tests.test_glossary import WRONG

    for e in catalogue:
        for wrong, right in WRONG.items():
            assert wrong not in e.msgstr, (
                f"{wrong!r} in the Korean text of {e.msgid!r}: the glossary says {right!r}"
            )


def _no_scale(q, k, v, attn_mask=None):
    scores = q @ k.transpose(-2, -1)  # the 1/sqrt(d) is missing
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf"))
    w = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return w @ v, w


def test_a_failing_check_names_the_mistake_in_korean_and_in_english():
    english = MISTAKES["scaled_dot_product_attention"][0].description
    assert english.startswith("the scores are not scaled")
    with language("ko"):
        with pytest.raises(CheckFailed) as korean:
            check_scaled_dot_product_attention(_no_scale)
        korean_text = "\n".join(failure_lines(korean.value, color=False))
    korean_mistake = _i18n.catalogue("ko")[english]
    assert korean_mistake in korean_text and "sqrt(d_k)" in korean_mistake
    assert "알려진 실수" in korean_text and "힌트" in korean_text, korean_text
    assert english not in korean_text
    with pytest.raises(CheckFailed) as plain:
        check_scaled_dot_product_attention(_no_scale)
    assert english in str(plain.value) and not re.search(r"[가-힣]", str(plain.value))


def test_language_is_restored_after_the_block_even_on_error():
    assert current_language() == "en"
    with pytest.raises(RuntimeError), language("ko"):
        assert current_language() == "ko"
        raise RuntimeError
    assert current_language() == "en"
    use_language("ko")
    try:
        assert current_language() == "ko"
    finally:
        use_language("en")
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        use_language("fr")


def test_not_attempted_and_passed_lines_speak_korean(capsys):
    from tfmcourse.checks import check_causal_mask
    from tfmcourse.masks import causal_mask

    def stub(T):
        raise NotImplementedError("Exercise 6.1")

    with language("ko"):
        with pytest.raises(CheckFailed) as exc:
            check_causal_mask(stub)
        (line,) = failure_lines(exc.value, color=False)
        check_causal_mask(causal_mask)
    assert "아직 풀지 않았습니다" in line and "`raise NotImplementedError(…)`" in line
    assert "causal_mask: 정답입니다" in capsys.readouterr().out


def test_hints_speak_the_current_language():
    from tfmcourse.checks import hints

    hints._shown.pop("padding_mask", None)
    with language("ko"):
        text = next_hint("padding_mask")
    hints._shown.pop("padding_mask", None)
    assert text.startswith("padding_mask의 힌트 1/3") and "패딩" in text


def _nb(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_a_notebook_language_comes_from_its_setup_line_else_its_path(tmp_path):
    assert notebook_language(_nb(_i18n.SETUP_LINE, "x = 1")) == "ko"
    assert notebook_language(_nb("x = 1")) == "en"
    assert notebook_language(_nb("x = 1"), tmp_path / "work" / "ko" / "exercises" / "06.ipynb") == "ko"
    assert notebook_language(None, ROOT / "ko" / "exercises" / "05_positional_encoding.ipynb") == "ko"
    assert notebook_language(None, ROOT / "exercises" / "05_positional_encoding.ipynb") == "en"
    assert (
        notebook_language(None, tmp_path / "ko" / "homework.ipynb") == "en"
    )  # a folder named ko is not enough


def test_the_korean_exercise_notebooks_select_korean_with_their_setup_cell():
    from tfmcourse import editions, nbtools

    cell = editions.language_setup_cell("ko")
    assert notebook_language(_nb(cell.source)) == "ko"
    korean = sorted((ROOT / "ko" / "exercises").glob("*.ipynb"))
    assert korean, "the Korean edition has exercise notebooks"
    for path in korean:
        nb = nbtools.read(path)
        assert notebook_language(nb) == "ko", path.name
        namespace: dict = {}
        try:
            exec(cell.source, namespace)  # the cell as a learner runs it
            assert current_language() == "ko"
        finally:
            use_language("en")
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        assert notebook_language(nbtools.read(path)) == "en", path.name


def _outcome(check, impl) -> tuple[str, str]:
    try:
        check(impl)
    except CheckFailed as exc:
        return type(exc).__name__, str(exc)
    return "passed", ""


def _mutants():
    from tests.mutants import load_all

    return load_all()


@pytest.mark.parametrize(
    "mutant", _mutants(), ids=lambda m: f"{m.exercise}-{'ok' if m.correct else 'bad'}-{m.label}"
)
def test_a_check_judges_alike_in_korean_and_names_the_same_mistake(mutant, capsys):
    """Messages only: the language never changes what a check accepts, and a named mistake stays named."""
    from tfmcourse.checks import EXERCISES

    check = EXERCISES[mutant.exercise].check
    english, english_message = _outcome(check, mutant.impl)
    with language("ko"):
        korean, korean_message = _outcome(check, mutant.impl)
    assert korean == english
    out = capsys.readouterr().out
    if english == "passed":
        assert "정답입니다" in out
        return
    assert korean_message.startswith(f"{mutant.exercise}: ") and re.search(r"[가-힣]", korean_message)
    named = [m.description for m in MISTAKES.get(mutant.exercise, []) if m.description in english_message]
    for description in named:
        assert _i18n.catalogue("ko")[description] in korean_message, description
