"""``tfmcourse build``: generate ``exercises/`` from ``solutions/`` (then ``ko/``, see ``editions``).

The solution notebook is the single source. In its code cells, each solution
region sits between two stable markers, indented like the code it replaces::

    def causal_mask(T):
        \"\"\"...\"\"\"
        # BEGIN SOLUTION: Exercise 6.1: build the (T, T) causal mask (about 1 line)
        return torch.ones(T, T, dtype=torch.bool).triu(1)
        # END SOLUTION

The exercise notebook gets, in its place,
``raise NotImplementedError("Exercise 6.1: build the (T, T) causal mask (about 1 line)")``.
Cells tagged ``solution-only`` are dropped; every other cell (text, check
cells) is kept; outputs are cleared. A last cell links to the next lesson
(from :mod:`tfmcourse.course`) and notes, for course authors, where the
notebook comes from. The generated notebook records a hash of
its cells so that a later build can tell whether a learner has edited it: it
then refuses to overwrite it (``--force`` keeps a ``.bak.ipynb`` copy).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tfmcourse import nbtools
from tfmcourse.course import next_lesson

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<text>.*?))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
EXERCISE_TEXT = re.compile(r"^Exercise \d+\.\d+: .+")


class BuildError(ValueError):
    """A solution notebook's markers are malformed."""


def strip_solutions(source: str, where: str = "") -> str:
    """Replace every marked solution region of a code cell's source by a stub."""
    out: list[str] = []
    inside = None
    for n, line in enumerate(source.splitlines(), 1):
        b, e = BEGIN.match(line), END.match(line)
        if b:
            if inside is not None:
                raise BuildError(f"{where} line {n}: BEGIN SOLUTION inside another solution region")
            text = (b.group("text") or "").strip()
            if not EXERCISE_TEXT.match(text):
                raise BuildError(
                    f"{where} line {n}: the marker must say which exercise it is, e.g. "
                    f"'# BEGIN SOLUTION: Exercise 6.1: build the causal mask (about 1 line)'"
                )
            out.append(f"{b.group('indent')}raise NotImplementedError({text!r})")
            inside = n
        elif e:
            if inside is None:
                raise BuildError(f"{where} line {n}: END SOLUTION without BEGIN SOLUTION")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise BuildError(f"{where} line {inside}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def _cells_hash(nb: nbformat.NotebookNode) -> str:
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return h.hexdigest()


def exercise_notebook(solution: nbformat.NotebookNode, solution_path: str) -> nbformat.NotebookNode:
    """The exercise notebook generated from a solution notebook."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = nbformat.from_dict({k: v for k, v in solution.metadata.items() if k != "tfmcourse"})
    for i, cell in enumerate(solution.cells):
        if "solution-only" in cell.metadata.get("tags", []):
            continue
        new = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code":
            new.source = strip_solutions(cell.source, f"{solution_path} cell {i}")
        nb.cells.append(new)
    nb.cells.append(nbformat.v4.new_markdown_cell(footer(solution_path)))
    nbtools.clean(nb, keep_outputs=False)
    nb.metadata["tfmcourse"] = {"generated_from": solution_path, "cells_sha256": _cells_hash(nb)}
    return nb


def footer(solution_path: str) -> str:
    """The last cell of an exercise notebook: where to go next, then a note for course authors."""
    m = re.match(r"(\d{2})_", Path(solution_path).name)
    lines = []
    if m:
        this = int(m.group(1))
        nxt = next_lesson(this)
        links = [f"[back to lesson {this:02d}](../notebooks/{Path(solution_path).name})"]
        links.append("[the course map](../notebooks/00_start_here.ipynb)")
        if nxt is not None:
            lines.append(
                f"**Next:** [{nxt.number:02d} · {nxt.title}](../notebooks/{nxt.notebook}) "
                f"(about {nxt.minutes} min)"
            )
        else:
            lines.append("**You have reached the end of the course.**")
        lines.append("")
        lines.append(
            "Or go " + " · ".join(links) + ". `tfmcourse progress` shows what you have passed so far."
        )
        lines.append("")
    lines.append(
        f"<small>For course authors: generated from `{solution_path}` by `tfmcourse build`; "
        f"edit the solution and rebuild rather than this file.</small>"
    )
    return "\n".join(lines)


@dataclass
class Plan:
    solution: Path
    target: Path
    text: str
    status: str  # "up to date" | "new" | "stale" | "edited"


def plan(root: Path) -> list[Plan]:
    root = Path(root)
    plans = []
    for sol in sorted((root / "solutions").glob("*.ipynb")):
        rel = sol.relative_to(root).as_posix()
        text = nbtools.dumps(exercise_notebook(nbtools.read(sol), rel))
        target = root / "exercises" / sol.name
        if not target.exists():
            status = "new"
        elif target.read_text(encoding="utf-8") == text:
            status = "up to date"
        else:
            status = "edited" if _learner_edited(target) else "stale"
        plans.append(Plan(sol, target, text, status))
    return plans


def _learner_edited(target: Path) -> bool:
    """True when the cells differ from what the last build wrote (outputs don't count)."""
    try:
        nb = nbtools.read(target)
    except Exception:
        return True
    recorded = nb.metadata.get("tfmcourse", {}).get("cells_sha256")
    return recorded != _cells_hash(nb)


def orphans(root: Path) -> list[Path]:
    sols = {p.name for p in (Path(root) / "solutions").glob("*.ipynb")}
    return [p for p in sorted((Path(root) / "exercises").glob("*.ipynb")) if p.name not in sols]


def build(root: Path, *, check: bool = False, force: bool = False, out=print) -> int:
    """Regenerate exercises, then the translated editions; return a process exit status."""
    from tfmcourse import editions

    status = build_exercises(root, check=check, force=force, out=out)
    return max(status, editions.build(root, check=check, out=out))


def build_exercises(root: Path, *, check: bool = False, force: bool = False, out=print) -> int:
    """Regenerate exercises; return a process exit status."""
    root = Path(root)
    plans = plan(root)
    todo = [p for p in plans if p.status != "up to date"]
    stray = orphans(root)
    if check:
        for p in todo:
            out(f"{p.target.relative_to(root)}: {p.status} (regenerate from {p.solution.relative_to(root)})")
        for p in stray:
            out(f"{p.relative_to(root)}: has no solution notebook in solutions/")
        if todo or stray:
            out("exercises/ is out of date: run `tfmcourse build`")
            return 1
        out(f"exercises/ is up to date ({len(plans)} notebooks)")
        return 0
    refused = []
    (root / "exercises").mkdir(exist_ok=True)
    for p in todo:
        rel = p.target.relative_to(root)
        if p.status == "edited":
            if not force:
                refused.append(rel)
                continue
            backup = p.target.with_suffix(".bak.ipynb")
            shutil.copyfile(p.target, backup)
            out(f"{rel}: had been edited; your version is saved as {backup.relative_to(root)}")
        p.target.write_text(p.text, encoding="utf-8")
        out(f"{rel}: {'written' if p.status == 'new' else 'updated'}")
    for rel in refused:
        out(
            f"{rel}: NOT overwritten — it has been edited since it was generated. "
            f"Move your work elsewhere, or run `tfmcourse build --force` to regenerate it "
            f"(your version is then kept as a .bak.ipynb file)."
        )
    for p in stray:
        out(f"{p.relative_to(root)}: has no solution notebook in solutions/ (left alone)")
    if not todo:
        out(f"exercises/ is up to date ({len(plans)} notebooks)")
    return 1 if refused else 0


def find_root(start: Path | None = None) -> Path:
    """The course folder: the nearest parent with ``solutions/`` and ``tfmcourse/``."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "solutions").is_dir() and (d / "tfmcourse").is_dir():
            return d
    pkg_root = Path(__file__).resolve().parent.parent
    if (pkg_root / "solutions").is_dir():
        return pkg_root
    raise FileNotFoundError("cannot find the course folder (one with solutions/ and tfmcourse/); use --root")
