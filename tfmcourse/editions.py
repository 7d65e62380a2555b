"""Editions in other languages, generated from the English notebooks and translation catalogues.

The English notebooks are the only source. The Korean text of a notebook lives
in a gettext catalogue beside the course, one per notebook, at the same
relative path under ``po/ko/`` (``notebooks/05_x.ipynb`` →
``po/ko/notebooks/05_x.po``), so any PO editor (Poedit, Lokalize, Weblate) can
be used. Each entry is one markdown cell: ``msgctxt`` is the cell id,
``msgid`` its English text, ``msgstr`` the translation.

Lessons and exercise notebooks get a catalogue each: the exercise notebook is
the text a learner reads (with its own header cell), so it is translated as it
is rather than through its solution notebook.

Updating a catalogue from the English notebook (as ``msgmerge`` does):

- a cell whose English text is unchanged keeps its translation, even if it moved;
- a cell whose English text changed keeps its old translation marked *fuzzy*,
  with the old English as ``#| msgid`` so the translator sees what changed;
- a new cell gets an empty entry; a removed cell's entry becomes obsolete
  (``#~``), so its translation is reused if the cell comes back.

:func:`build` updates the catalogues and writes ``ko/notebooks/`` and
``ko/exercises/``: the English notebook with its markdown replaced, code cells
and their outputs shared byte for byte, and relative links adjusted so that
they reach the Korean notebook when one exists and the English file otherwise.
A notebook without a catalogue has no Korean edition yet, which is not an
error; a catalogue with an untranslated or fuzzy entry is.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import polib

from tfmcourse import nbtools

LANG = "ko"
SOURCES = ("notebooks", "exercises")
WRAP = 78

_LINK = re.compile(r"(?P<pre>\]\(|\b(?:href|src)=\")(?P<target>[^)\s\"]+)")


def catalogue_path(root: Path, english: Path, lang: str = LANG) -> Path:
    """``po/<lang>/<folder>/<name>.po`` for the English notebook ``english``."""
    rel = Path(english).resolve().relative_to(Path(root).resolve())
    return Path(root) / "po" / lang / rel.with_suffix(".po")


def edition_path(root: Path, english: Path, lang: str = LANG) -> Path:
    """``<lang>/<folder>/<name>.ipynb``: same file name and layout as the English notebook."""
    rel = Path(english).resolve().relative_to(Path(root).resolve())
    return Path(root) / lang / rel


def english_notebooks(root: Path) -> list[Path]:
    return [p for folder in SOURCES for p in sorted((Path(root) / folder).glob("*.ipynb"))]


def _translatable(cell) -> bool:
    return cell.cell_type == "markdown" and bool(cell.source.strip())


# ---------------------------------------------------------------- catalogues


def new_catalogue(english_rel: str, lang: str = LANG) -> polib.POFile:
    po = polib.POFile(wrapwidth=WRAP)
    po.header = (
        f"Translation of {english_rel} ({lang}).\n"
        "One entry per markdown cell: msgctxt is the cell id, msgid the English text.\n"
        "Generated notebook: tfmcourse build. Edit msgstr only; remove 'fuzzy' once reviewed."
    )
    po.metadata = {
        "Project-Id-Version": "tfmcourse",
        "Language": lang,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    return po


def read_catalogue(path: Path) -> polib.POFile:
    po = polib.pofile(str(path), wrapwidth=WRAP)
    po.wrapwidth = WRAP
    return po


def catalogue_text(po: polib.POFile) -> str:
    return str(po)


def update_catalogue(nb: nbformat.NotebookNode, old: polib.POFile, english_rel: str) -> polib.POFile:
    """A catalogue for ``nb``'s markdown cells, keeping what ``old`` already translates."""
    new = new_catalogue(english_rel, old.metadata.get("Language", LANG))
    new.header, new.metadata = old.header or new.header, dict(old.metadata) or new.metadata
    translated = [e for e in old if e.msgstr and "fuzzy" not in e.flags]
    by_key = {(e.msgctxt, e.msgid): e for e in old if not e.obsolete}
    by_text = {e.msgid: e for e in reversed(translated)}  # prefer the first, non-obsolete one
    used: set[int] = set()
    cells = [c for c in nb.cells if _translatable(c)]
    pending = []
    for cell in cells:
        entry = polib.POEntry(msgctxt=cell.id, msgid=cell.source, msgstr="")
        same = by_key.get((cell.id, cell.source))
        if same is None or not same.msgstr:
            same = by_text.get(cell.source)
        if same is not None and same.msgstr:
            entry.msgstr, entry.flags = same.msgstr, [f for f in same.flags if f == "fuzzy"]
            entry.previous_msgid = same.previous_msgid if entry.flags else None
            entry.tcomment = same.tcomment
            used.add(id(same))
        else:
            pending.append(entry)
        new.append(entry)
    # a cell whose English text changed: its old entry had the same id and is not used elsewhere
    by_id = {e.msgctxt: e for e in old if not e.obsolete and e.msgstr}
    for entry in pending:
        before = by_id.get(entry.msgctxt)
        if before is not None and id(before) not in used:
            entry.msgstr, entry.flags, entry.tcomment = before.msgstr, ["fuzzy"], before.tcomment
            entry.previous_msgid = before.previous_msgid or before.msgid
            used.add(id(before))
    kept = {(e.msgctxt, e.msgid) for e in new}
    for e in old:
        if e.msgstr and id(e) not in used and (e.msgctxt, e.msgid) not in kept:
            kept.add((e.msgctxt, e.msgid))
            gone = copy.copy(e)
            gone.obsolete = True
            new.append(gone)
    return new


def problems(po: polib.POFile) -> list[str]:
    """One line per cell that blocks the edition: untranslated, or fuzzy (English changed)."""
    out = []
    for e in po:
        if e.obsolete:
            continue
        if not e.msgstr.strip():
            out.append(f"cell {e.msgctxt} has no translation")
        elif "fuzzy" in e.flags:
            out.append(f"cell {e.msgctxt} is fuzzy: its English text changed; review it, then drop the flag")
    return out


# ---------------------------------------------------------------- notebooks


def relink(text: str, english_rel: str, has_edition: Callable[[str], bool], lang: str = LANG) -> str:
    """Adjust relative links of a translated cell to where the translated notebook lives.

    A link to a notebook that has an edition in ``lang`` stays as it is (same
    layout); any other relative link is rewritten to reach the English file.
    """
    english_dir = Path(english_rel).parent

    def fix(m: re.Match) -> str:
        target = m.group("target")
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target, re.I):
            return m.group(0)
        path, hash_, frag = target.partition("#")
        if not path:
            return m.group(0)
        resolved = os.path.normpath(english_dir / path).replace(os.sep, "/")
        if resolved.startswith("..") or has_edition(resolved):
            return m.group(0)
        new = os.path.relpath(resolved, Path(lang) / english_dir).replace(os.sep, "/")
        return f"{m.group('pre')}{new}{hash_}{frag}"

    return _LINK.sub(fix, text)


def translated_notebook(
    nb: nbformat.NotebookNode,
    po: polib.POFile,
    english_rel: str,
    has_edition: Callable[[str], bool],
    lang: str = LANG,
) -> nbformat.NotebookNode:
    """``nb`` with its markdown cells translated; raises ``ValueError`` if an entry is missing."""
    entries = {(e.msgctxt, e.msgid): e for e in po if not e.obsolete}
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if not _translatable(cell):
            continue
        e = entries.get((cell.id, cell.source))
        if e is None or not e.msgstr.strip() or "fuzzy" in e.flags:
            raise ValueError(f"{english_rel} cell {cell.id}: no current translation")
        cell.source = relink(e.msgstr, english_rel, has_edition, lang)
    meta = dict(out.metadata.get("tfmcourse", {}))
    meta["edition"] = {"language": lang, "translated_from": english_rel}
    if "cells_sha256" in meta:  # exercise notebooks: lets `build` tell a learner's edits apart
        from tfmcourse.build import _cells_hash

        meta["cells_sha256"] = _cells_hash(out)
    out.metadata["tfmcourse"] = meta
    return out


# ---------------------------------------------------------------- build and check


@dataclass
class Plan:
    english: Path
    catalogue: Path
    target: Path
    po: polib.POFile
    catalogue_changed: bool
    problems: list[str] = field(default_factory=list)
    text: str | None = None  # the translated notebook, when the catalogue is complete

    @property
    def target_status(self) -> str:
        if self.text is None:
            return "blocked"
        if not self.target.exists():
            return "missing"
        return "up to date" if self.target.read_text(encoding="utf-8") == self.text else "stale"


def plan(root: Path, lang: str = LANG) -> list[Plan]:
    """A plan for every English notebook that has a catalogue."""
    root = Path(root)
    english = english_notebooks(root)
    with_catalogue = [p for p in english if catalogue_path(root, p, lang).exists()]
    editions = {p.relative_to(root).as_posix() for p in with_catalogue}
    plans = []
    for path in with_catalogue:
        rel = path.relative_to(root).as_posix()
        cat = catalogue_path(root, path, lang)
        old = read_catalogue(cat)
        nb = nbtools.read(path)
        po = update_catalogue(nb, old, rel)
        p = Plan(path, cat, edition_path(root, path, lang), po, catalogue_text(po) != catalogue_text(old))
        p.problems = problems(po)
        if not p.problems:
            p.text = nbtools.dumps(translated_notebook(nb, po, rel, editions.__contains__, lang))
        plans.append(p)
    return plans


def orphans(root: Path, lang: str = LANG) -> list[tuple[Path, str]]:
    """Catalogues and generated notebooks left without their source, with the reason."""
    root = Path(root)
    found = []
    for folder in SOURCES:
        for cat in sorted((root / "po" / lang / folder).glob("*.po")):
            if not (root / folder / cat.with_suffix(".ipynb").name).exists():
                found.append((cat, "its English notebook does not exist"))
        for nb in sorted((root / lang / folder).glob("*.ipynb")):
            cat = catalogue_path(root, root / folder / nb.name, lang)
            if not (root / folder / nb.name).exists():
                found.append((nb, "its English notebook does not exist"))
            elif not cat.exists():
                found.append((nb, f"has no catalogue {cat.relative_to(root)}"))
    return found


def summary(plans: list[Plan], root: Path, lang: str = LANG) -> str:
    """``ko: 2 of 19 notebooks translated (notebooks 1 of 10, exercises 1 of 9)``."""
    parts, done, total = [], 0, 0
    for folder in SOURCES:
        n_english = len(list((Path(root) / folder).glob("*.ipynb")))
        n = sum(p.english.parent.name == folder and p.text is not None for p in plans)
        parts.append(f"{folder} {n} of {n_english}")
        done, total = done + n, total + n_english
    return f"{lang}: {done} of {total} notebooks translated ({', '.join(parts)})"


def build(root: Path, *, check: bool = False, lang: str = LANG, out=print) -> int:
    """Update the catalogues and write the translated notebooks; return a process exit status.

    With ``check``, write nothing and fail when a catalogue is out of date,
    incomplete or fuzzy, or a translated notebook is missing or stale.
    """
    root = Path(root)
    plans = plan(root, lang)
    failed = False
    for p in plans:
        cat, target = p.catalogue.relative_to(root), p.target.relative_to(root)
        english = p.english.relative_to(root)
        for line in p.problems:
            out(f"{cat}: {line}")
            failed = True
        if p.catalogue_changed:
            if check:
                out(f"{cat}: out of date with {english} (run `tfmcourse build` to update it)")
                failed = True
            else:
                p.catalogue.write_text(catalogue_text(p.po), encoding="utf-8")
                out(f"{cat}: updated from {english}")
        status = p.target_status
        if status == "blocked":
            out(f"{target}: not regenerated until every cell of {cat} is translated and none is fuzzy")
        elif status != "up to date":
            if check:
                out(f"{target}: {status} (regenerate from {english} and {cat})")
                failed = True
            else:
                p.target.parent.mkdir(parents=True, exist_ok=True)
                p.target.write_text(p.text, encoding="utf-8")
                out(f"{target}: {'written' if status == 'missing' else 'updated'}")
    for path, reason in orphans(root, lang):
        out(f"{path.relative_to(root)}: {reason}")
        failed = True
    out(summary(plans, root, lang))
    if failed and check:
        out(
            f"the {lang} edition is out of date: translate or review the cells named above, then run `tfmcourse build`"
        )
    return 1 if failed else 0


def start(root: Path, notebooks: list[Path], lang: str = LANG, out=print) -> int:
    """Create (or update) the catalogue of each English notebook, ready to translate."""
    root = Path(root).resolve()
    for path in notebooks:
        path = Path(path).resolve()
        if path.parent.parent != root or path.parent.name not in SOURCES or path.suffix != ".ipynb":
            raise ValueError(f"{path}: not a notebook in {' or '.join(f'{s}/' for s in SOURCES)}")
        rel = path.relative_to(root).as_posix()
        cat = catalogue_path(root, path, lang)
        old = read_catalogue(cat) if cat.exists() else new_catalogue(rel, lang)
        po = update_catalogue(nbtools.read(path), old, rel)
        cat.parent.mkdir(parents=True, exist_ok=True)
        cat.write_text(catalogue_text(po), encoding="utf-8")
        out(
            f"{cat.relative_to(root)}: {len(problems(po))} of {len(po) - len(po.obsolete_entries())} cells to translate"
        )
    return 0
