"""The Korean edition: catalogues follow the English notebooks, build writes ko/, --check guards drift."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import polib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_glossary import glossary
from tfmcourse import editions, nbtools
from tfmcourse.build import build

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- a tiny course


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
            cell.execution_count = 1
            nb.cells.append(cell)
    return nbtools.clean(nb)


LESSON = [
    ("md", "# Lesson 01\n\nAttention, *step by step*."),
    ("code", "print(6 * 7)"),
    (
        "md",
        'See [lesson 02](02_later.ipynb), the [exercises](../exercises/01_first.ipynb) and the <a href="../README.md">README</a>.',
    ),
    ("md", '## Summary\n\nThat\'s "it".'),
]
LATER = [("md", "# Lesson 02"), ("code", "x = 1")]
SOLUTION = [
    ("md", "# Exercises 01\n\nBack to [lesson 01](../notebooks/01_first.ipynb)."),
    (
        "code",
        "def f():\n    # BEGIN SOLUTION: Exercise 1.1: return 42 (about 1 line)\n    return 42\n    # END SOLUTION",
    ),
]
KOREAN = {
    "# Lesson 01\n\nAttention, *step by step*.": "# 01강\n\n어텐션(attention)을 *한 단계씩*.",
    LESSON[2][
        1
    ]: '[02강](02_later.ipynb), [연습 문제](../exercises/01_first.ipynb), <a href="../README.md">README</a>를 보자.',
    '## Summary\n\nThat\'s "it".': '## 정리\n\n"끝"이다.',
    SOLUTION[0][1]: "# 01강 연습 문제\n\n[01강](../notebooks/01_first.ipynb)으로 돌아가기.",
}
AUTHORED = {source for kind, source in LESSON + LATER + SOLUTION if kind == "md"}


@pytest.fixture
def course(tmp_path) -> Path:
    for folder in ("notebooks", "solutions", "tfmcourse"):
        (tmp_path / folder).mkdir()
    nbtools.write(_notebook(*LESSON), tmp_path / "notebooks" / "01_first.ipynb")
    nbtools.write(_notebook(*LATER), tmp_path / "notebooks" / "02_later.ipynb")
    nbtools.write(_notebook(*SOLUTION), tmp_path / "solutions" / "01_first.ipynb")
    (tmp_path / "README.md").write_text("readme")
    assert build(tmp_path, out=lambda *_: None) == 0  # exercises/ from solutions/
    return tmp_path


def _run(root, **kw) -> tuple[int, list[str]]:
    lines: list[str] = []
    return build(root, out=lines.append, **kw), lines


def _translate(cat: Path, table=KOREAN, *, review=False) -> None:
    po = editions.read_catalogue(cat)
    for e in po:
        if e.msgid not in AUTHORED and not e.msgstr:  # text `build` adds to an exercise notebook
            e.msgstr = "<small>`tfmcourse build`가 생성한 셀이다.</small>"
        if e.msgid in table and (not e.msgstr or review):
            e.msgstr = table[e.msgid]
        if review and "fuzzy" in e.flags:
            e.flags.remove("fuzzy")
            e.previous_msgid = None
    cat.write_text(editions.catalogue_text(po), encoding="utf-8")


def _start_and_translate(root: Path) -> None:
    notebooks = [root / "notebooks" / "01_first.ipynb", root / "exercises" / "01_first.ipynb"]
    editions.start(root, notebooks, out=lambda *_: None)
    for nb in notebooks:
        _translate(editions.catalogue_path(root, nb))


def _set_markdown(path: Path, index: int, text: str) -> None:
    nb = nbtools.read(path)
    nb.cells[index].source = text
    nbtools.write(nb, path)


def test_a_notebook_without_catalogue_is_not_an_error_and_is_counted(course):
    status, lines = _run(course, check=True)
    assert status == 0, lines
    assert lines[-1] == "ko: 0 of 3 notebooks translated (notebooks 0 of 2, exercises 0 of 1)"
    assert not (course / "ko").exists()


def test_round_trip_extract_translate_build_check(course):
    editions.start(course, [course / "notebooks" / "01_first.ipynb"], out=lambda *_: None)
    status, lines = _run(course, check=True)
    assert status == 1
    cat = "po/ko/notebooks/01_first.po"
    assert f"{cat}: cell c000 has no translation" in lines and f"{cat}: cell c003 has no translation" in lines
    assert not any("c001" in l for l in lines), "code cells are not translated"

    _start_and_translate(course)
    status, lines = _run(course)
    assert status == 0, lines
    assert "ko/notebooks/01_first.ipynb: written" in lines and "ko/exercises/01_first.ipynb: written" in lines
    status, lines = _run(course, check=True)
    assert status == 0, lines
    assert lines[-1] == "ko: 2 of 3 notebooks translated (notebooks 1 of 2, exercises 1 of 1)"

    ko = nbtools.read(course / "ko" / "notebooks" / "01_first.ipynb")
    en = nbtools.read(course / "notebooks" / "01_first.ipynb")
    assert ko.cells[0].source == KOREAN[LESSON[0][1]]
    assert ko.cells[1] == en.cells[1], "code cells and their outputs are shared as they are"
    assert ko.metadata["tfmcourse"]["edition"] == {
        "language": "ko",
        "translated_from": "notebooks/01_first.ipynb",
    }


def test_links_reach_korean_notebooks_when_they_exist_and_english_files_otherwise(course):
    _start_and_translate(course)
    _run(course)
    text = nbtools.read(course / "ko" / "notebooks" / "01_first.ipynb").cells[2].source
    assert "](../../notebooks/02_later.ipynb)" in text, (
        "lesson 02 has no Korean edition: link the English one"
    )
    assert "](../exercises/01_first.ipynb)" in text, "the Korean exercises exist: same relative link"
    assert 'href="../../README.md"' in text
    for folder in ("notebooks", "exercises"):
        nb = course / "ko" / folder / "01_first.ipynb"
        for target in _relative_links(nbtools.read(nb)):
            assert (nb.parent / target).resolve().exists(), f"{nb}: {target}"


def test_relink_leaves_urls_anchors_and_absolute_paths_alone():
    has = {"notebooks/05_x.ipynb"}.__contains__
    text = "[a](https://x.org/a.ipynb) [b](#top) [c](/abs.png) [d](05_x.ipynb#sec) ![e](img/f.png) [g](06_y.ipynb#s)"
    assert editions.relink(text, "notebooks/05_x.ipynb", has) == (
        "[a](https://x.org/a.ipynb) [b](#top) [c](/abs.png) [d](05_x.ipynb#sec) "
        "![e](../../notebooks/img/f.png) [g](../../notebooks/06_y.ipynb#s)"
    )


def test_an_english_edit_marks_the_entry_fuzzy_and_check_names_the_cell(course):
    _start_and_translate(course)
    _run(course)
    lesson = course / "notebooks" / "01_first.ipynb"
    _set_markdown(lesson, 3, "## Summary\n\nThat's all.")
    status, lines = _run(course, check=True)
    assert status == 1
    assert "po/ko/notebooks/01_first.po: cell c003 is fuzzy" in "\n".join(lines)
    assert any(
        l.startswith("po/ko/notebooks/01_first.po: out of date with notebooks/01_first.ipynb") for l in lines
    )

    status, lines = _run(course)  # updates the catalogue, refuses to write a half-translated notebook
    assert status == 1
    (entry,) = [
        e for e in editions.read_catalogue(editions.catalogue_path(course, lesson)) if e.msgctxt == "c003"
    ]
    assert "fuzzy" in entry.flags and entry.msgstr == KOREAN['## Summary\n\nThat\'s "it".']
    assert entry.previous_msgid == '## Summary\n\nThat\'s "it".', "the translator sees what changed"
    assert "## 정리" in nbtools.read(course / "ko" / "notebooks" / "01_first.ipynb").cells[3].source

    _translate(editions.catalogue_path(course, lesson), {entry.msgid: "## 정리\n\n여기까지다."}, review=True)
    assert _run(course)[0] == 0
    assert _run(course, check=True)[0] == 0
    assert (
        nbtools.read(course / "ko" / "notebooks" / "01_first.ipynb").cells[3].source
        == "## 정리\n\n여기까지다."
    )


def test_a_changed_code_cell_makes_the_korean_notebook_stale_not_fuzzy(course):
    _start_and_translate(course)
    _run(course)
    lesson = course / "notebooks" / "01_first.ipynb"
    nb = nbtools.read(lesson)
    nb.cells[1].source = "print(7 * 6)"
    nbtools.write(nb, lesson)
    status, lines = _run(course, check=True)
    assert status == 1
    assert lines[1:-2] == [
        "ko/notebooks/01_first.ipynb: stale (regenerate from notebooks/01_first.ipynb and po/ko/notebooks/01_first.po)"
    ]
    assert _run(course)[0] == 0
    assert nbtools.read(course / "ko" / "notebooks" / "01_first.ipynb").cells[1].source == "print(7 * 6)"


def test_moved_cells_keep_their_translation_and_removed_ones_become_obsolete(course):
    _start_and_translate(course)
    lesson = course / "notebooks" / "01_first.ipynb"
    cat = editions.catalogue_path(course, lesson)
    nb = nbtools.read(lesson)
    removed = nb.cells.pop(3)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("New first cell."))
    nbtools.write(nbtools.clean(nb), lesson)
    _run(course)
    po = editions.read_catalogue(cat)
    current = {e.msgid: e for e in po if not e.obsolete}
    assert current["New first cell."].msgstr == "" and "fuzzy" not in current["New first cell."].flags
    moved = current[LESSON[0][1]]
    assert moved.msgctxt == "c001" and moved.msgstr == KOREAN[LESSON[0][1]] and not moved.flags
    (gone,) = po.obsolete_entries()
    assert gone.msgid == removed.source

    nb = nbtools.read(lesson)
    nb.cells.pop(0)
    nb.cells.append(nbformat.v4.new_markdown_cell(removed.source))
    nbtools.write(nbtools.clean(nb), lesson)
    assert _run(course)[0] == 0, "a restored cell gets its translation back"
    assert _run(course, check=True)[0] == 0


def test_a_catalogue_or_korean_notebook_without_english_notebook_is_an_error(course):
    _start_and_translate(course)
    _run(course)
    (course / "notebooks" / "01_first.ipynb").unlink()
    status, lines = _run(course, check=True)
    assert status == 1
    assert "po/ko/notebooks/01_first.po: its English notebook does not exist" in lines
    assert "ko/notebooks/01_first.ipynb: its English notebook does not exist" in lines
    (course / "po" / "ko" / "exercises" / "01_first.po").unlink()
    assert (
        "ko/exercises/01_first.ipynb: has no catalogue po/ko/exercises/01_first.po"
        in _run(course, check=True)[1]
    )


def test_translate_refuses_a_file_outside_the_english_folders(course):
    with pytest.raises(ValueError, match="not a notebook in notebooks/ or exercises/"):
        editions.start(course, [course / "solutions" / "01_first.ipynb"], out=lambda *_: None)


text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
)


@settings(max_examples=60, deadline=None)
@given(english=text.filter(str.strip), korean=text.filter(str.strip))
def test_catalogue_text_round_trips_any_cell(english, korean):
    po = editions.new_catalogue("notebooks/x.ipynb")
    po.append(polib.POEntry(msgctxt="c000", msgid=english, msgstr=korean))
    again = polib.pofile(editions.catalogue_text(po))
    (entry,) = list(again)
    assert (entry.msgid, entry.msgstr) == (english, korean)


def _markdown_notebook(texts) -> nbformat.NotebookNode:
    return nbtools.clean(_notebook(*[("md", t) for t in texts]))


words = st.text("abcdefgh ", min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=80, deadline=None)
@given(old=st.lists(words, min_size=1, max_size=6, unique=True), data=st.data())
def test_update_never_loses_a_translation_nor_passes_a_changed_cell_as_current(old, data):
    po = editions.update_catalogue(_markdown_notebook(old), editions.new_catalogue("n.ipynb"), "n.ipynb")
    for e in po:
        e.msgstr = f"번역 {e.msgid}"
    kept = data.draw(st.lists(st.sampled_from(old), unique=True), label="kept, in any order")
    added = data.draw(st.lists(words.filter(lambda w: w not in old), max_size=3, unique=True), label="new")
    order = data.draw(st.permutations(kept + added), label="new order")
    new = editions.update_catalogue(_markdown_notebook(order), po, "n.ipynb")
    current = {e.msgid: e for e in new if not e.obsolete}
    assert [e.msgid for e in new if not e.obsolete] == list(order)
    for text in kept:
        assert current[text].msgstr == f"번역 {text}" and "fuzzy" not in current[text].flags
    for text in added:  # never passes as translated: empty, or the old text of that cell marked fuzzy
        assert current[text].msgstr == "" or "fuzzy" in current[text].flags
        assert editions.problems(new), "a new cell blocks the edition until it is translated"
    removed = set(old) - set(kept)
    reused = {e.previous_msgid for e in new if "fuzzy" in e.flags}
    assert {e.msgid for e in new.obsolete_entries()} == removed - reused
    again = editions.update_catalogue(_markdown_notebook(order), new, "n.ipynb")
    assert editions.catalogue_text(again) == editions.catalogue_text(new), "updating twice changes nothing"


def test_translate_and_build_check_from_the_command_line(course):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "tfmcourse", *args, "--root", str(course)], capture_output=True, text=True
        )

    started = cli("translate", str(course / "notebooks" / "02_later.ipynb"))
    assert (
        started.returncode == 0 and "po/ko/notebooks/02_later.po: 1 of 1 cells to translate" in started.stdout
    )
    check = cli("build", "--check")
    assert check.returncode == 1
    assert "po/ko/notebooks/02_later.po: cell c000 has no translation" in check.stdout
    assert "ko: 0 of 3 notebooks translated (notebooks 0 of 2, exercises 0 of 1)" in check.stdout
    wrong = cli("translate", str(course / "README.md"))
    assert wrong.returncode == 2 and "not a notebook in notebooks/ or exercises/" in wrong.stderr


# ---------------------------------------------------------------- the course's Korean edition

KOREAN_NOTEBOOKS = sorted((ROOT / "ko").glob("*/*.ipynb"))


def _relative_links(nb) -> list[str]:
    links = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for m in editions._LINK.finditer(cell.source):
                target = m.group("target").partition("#")[0]
                if target and not re.match(r"^([a-z][a-z0-9+.-]*:|/)", target, re.I):
                    links.append(target)
    return links


def test_the_korean_edition_is_up_to_date():
    lines: list[str] = []
    assert editions.build(ROOT, check=True, out=lines.append) == 0, "\n".join(lines)
    assert KOREAN_NOTEBOOKS, "lesson 05 has a Korean edition"


@pytest.mark.parametrize("path", KOREAN_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_korean_code_cells_are_the_english_ones(path):
    """So the English nbval run proves the Korean notebook too: only markdown differs, and an
    exercise notebook has one code cell more, the setup line that makes its checks speak Korean."""
    ko, en = nbtools.read(path), nbtools.read(ROOT / path.parent.name / path.name)
    setup = [c for c in ko.cells if c.get("id") == editions.SETUP_CELL_ID]
    if path.parent.name == "exercises":
        assert setup == [editions.language_setup_cell("ko")], "one setup cell, exactly as the build writes it"
        first_code = next(c for c in ko.cells if c.cell_type == "code")
        assert first_code is setup[0], "the setup cell runs before any check"
        ko.cells.remove(setup[0])
    else:
        assert not setup, "lessons have no setup cell"
    assert [c.cell_type for c in ko.cells] == [c.cell_type for c in en.cells]
    for k, e in zip(ko.cells, en.cells):
        if e.cell_type == "code":
            assert k == e, f"cell {e.id} differs from the English notebook"
        else:
            assert k.source != e.source or not e.source.strip(), f"cell {e.id} is not translated"
            assert re.search("[가-힣]", k.source) or not e.source.strip(), f"cell {e.id} has no Hangul"


@pytest.mark.parametrize("path", KOREAN_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_links_in_korean_notebooks_resolve(path):
    links = _relative_links(nbtools.read(path))
    assert links, "every lesson and exercise links to another notebook"
    for target in links:
        assert (path.parent / target).resolve().exists(), f"{target} does not exist"


@pytest.mark.parametrize("path", KOREAN_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_emphasis_in_korean_notebooks_renders(path):
    """CommonMark closes ``*``/``**`` only if what follows is space or punctuation: ``**✓**로`` or
    ``*등변(…)*이어서`` shows its asterisks. Render every Korean cell and look for stray ones."""
    import mistune

    render = mistune.create_markdown()
    for cell in nbtools.read(path).cells:
        if cell.cell_type != "markdown":
            continue
        html = render(cell.source)
        html = re.sub(r"<code>.*?</code>|<pre>.*?</pre>", "", html, flags=re.S)
        html = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", "", html, flags=re.S)
        stray = [html[max(0, m.start() - 30) : m.end() + 30] for m in re.finditer(r"\*", html)]
        assert not stray, f"cell {cell.id}: emphasis left open around {stray[0]!r}"


def test_build_check_catches_an_english_edit_on_a_copy_of_the_course(tmp_path):
    for folder in ("notebooks", "exercises", "solutions", "po", "ko"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "tfmcourse").mkdir()
    lesson = tmp_path / "notebooks" / "05_positional_encoding.ipynb"
    nb = nbtools.read(lesson)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## 2."))
    cell.source = cell.source.replace("geometric progression", "geometric sequence")
    nbtools.write(nb, lesson)
    status, lines = _run(tmp_path, check=True)
    assert status == 1
    assert f"po/ko/notebooks/05_positional_encoding.po: cell {cell.id} is fuzzy" in "\n".join(lines)


# ---------------------------------------------------------------- README.ko.md

README_KO = ROOT / "README.ko.md"
ROW = re.compile(r"^\| (?P<n>\d\d) \| \[[^\]]+\]\((?P<english>notebooks/[^)]+)\) \| (?P<korean>.+) \|$", re.M)


def test_readme_ko_lists_every_lesson_and_which_are_translated():
    text = README_KO.read_text(encoding="utf-8")
    rows = list(ROW.finditer(text))
    lessons = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [r["english"] for r in rows] == [f"notebooks/{p.name}" for p in lessons], "one row per lesson"
    translated = 0
    for row in rows:
        name = Path(row["english"]).name
        assert row["n"] == name[:2]
        links = re.findall(r"\]\((ko/[^)]+)\)", row["korean"])
        expected = [
            f"ko/{folder}/{name}"
            for folder in ("notebooks", "exercises")
            if (ROOT / "ko" / folder / name).exists()
        ]
        assert links == expected, f"lesson {row['n']}: the table says {links}, ko/ has {expected}"
        if not expected:
            assert row["korean"] == "준비 중", f"lesson {row['n']}"
        translated += (ROOT / "ko" / "notebooks" / name).exists()
    assert f"지금까지 강의 {len(lessons)}개 중 {translated}개가 한국어로 번역되었다." in text


def test_readme_ko_links_resolve_and_it_keeps_the_quick_start():
    text = README_KO.read_text(encoding="utf-8")
    assert "make lab" in text and "make test" in text and "tfmcourse build --check" in text
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if not re.match(r"^[a-z]+:", target):
            assert (ROOT / target).exists(), target


# ---------------------------------------------------------------- one Korean term per concept


def _glossary() -> dict[str, str]:
    """English term → Korean term, one per concept, split from lesson 00's glossary rows."""
    terms = {}
    for english_row, korean_row in glossary().items():
        english = [t.strip() for t in re.sub(r"\(.*?\)", "", english_row).split("/")]
        korean = [t.strip() for t in re.sub(r"\(.*?\)", "", korean_row).split("/")]
        if len(english) != len(korean):
            continue
        head = english[0].split()
        for en, ko in zip(english, korean):
            if len(en.split()) == 1 and len(head) > 1:  # "attention weights / scores"
                en = " ".join([*head[:-1], en])
                ko = " ".join([*korean[0].split()[:-1], ko])
            terms[" ".join(en.lower().split())] = " ".join(ko.split())
    return terms


ORDINARY_WORDS = {"key", "value"}  # glossary terms that English prose also uses in their everyday sense


def _glossary_mismatches(english: str, korean: str, terms: dict[str, str]) -> list[str]:
    """Glossary terms that occur in the English text while their Korean term is absent from the translation."""
    prose = re.sub(r"`[^`]*`|\$[^$]*\$|\([^)]*\.ipynb[^)]*\)", "", english)  # code, maths and link targets
    return [
        f"{en!r} should be {ko!r}"
        for en, ko in terms.items()
        if en not in ORDINARY_WORDS
        and re.search(rf"(?<![\w-]){re.escape(en)}s?(?![\w-])", prose, re.I)
        and ko not in korean
    ]


def test_the_glossary_is_read_from_lesson_00():
    terms = _glossary()
    assert terms["positional encoding"] == "위치 인코딩" and terms["self-attention"] == "셀프 어텐션"
    assert terms["decoder"] == "디코더" and terms["attention scores"] == "어텐션 점수"
    assert _glossary_mismatches("Self-attention sees all", "자기 주의는 모두 본다", terms) == [
        "'self-attention' should be '셀프 어텐션'"
    ]
    assert _glossary_mismatches("`self_attention(x)`", "코드", terms) == []


# the notebooks' catalogues (the checks' catalogue, whose code is not in backticks, has its own test)
NOTEBOOK_CATALOGUES = sorted(
    p for folder in editions.SOURCES for p in (ROOT / "po" / "ko" / folder).glob("*.po")
)


@pytest.mark.parametrize("cat", NOTEBOOK_CATALOGUES, ids=lambda p: p.name)
def test_translations_use_the_glossary_terms(cat):
    terms = _glossary()
    wrong = {
        e.msgctxt: found
        for e in editions.read_catalogue(cat)
        if not e.obsolete and e.msgstr and (found := _glossary_mismatches(e.msgid, e.msgstr, terms))
    }
    assert not wrong, wrong


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "ko" / "exercises").glob("*.ipynb")), ids=lambda p: p.name)
def test_korean_exercises_run_in_their_folder_and_grade_as_not_attempted(path):
    from tfmcourse.checks import EXERCISES
    from tfmcourse.grading.kernel import grade_notebook

    report = grade_notebook(path)
    assert report.error is None, report.error
    lesson = int(path.name[:2])
    assert (
        sorted(e.name for e in report.exercises)
        == sorted(n for n, e in EXERCISES.items() if e.lesson == lesson)
        != []
    )
    assert {e.status for e in report.exercises} == {"not attempted"} and report.score == 0
