"""Class gradebooks for ``tfmcourse grade --secure submissions/``.

Layout of a class folder (nothing in it is ever written)::

    submissions/
        alice/06_attention.ipynb
        alice/07_multi_head.ipynb
        bob/06_attention.ipynb
        carol.ipynb                  # a notebook directly in the folder: student "carol"

The assignment is a set of lessons (``--lesson 6 --lesson 7``); every student
is graded out of the same maximum, that of the assignment. CSV
(``--csv FILE``): one row per student, sorted by name; the columns are
``student``, one per exercise of the assignment (in course order: the points
scored, the best over that student's notebooks), one per lesson
(``lesson_06``: that lesson's points), ``total``, ``max_total`` and ``notes``
(files that could not be graded, or are not part of the assignment, and why).
Links that lead out of the class folder are not followed. File names that are
not valid UTF-8 are kept, escaped (``\\udcXX``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from tfmcourse.grading.report import NotebookReport


@dataclass(frozen=True)
class Submission:
    student: str
    path: str  # the file to read
    display: str  # how it is named in reports
    problem: str | None  # why it cannot be graded at all (not a notebook, …), else None


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _outside(path: Path, root: Path) -> bool:
    return not path.resolve().is_relative_to(root)


def collect(paths: list[str]) -> list[Submission]:
    """Every file to grade. A folder is a class: ``folder/<student>/…`` or ``folder/<student>.ipynb``."""
    out: list[Submission] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {given}")
        if p.is_file():  # a notebook named on the command line: its path is the "student"
            out.append(_submission(str(p), p, None))
            continue
        root = p.resolve()
        for entry in sorted(p.iterdir(), key=lambda e: e.name):
            if _hidden(entry.name):
                continue
            if entry.is_file() or _outside(entry, root):
                out.append(_submission(entry.stem if entry.is_file() else entry.name, entry, root))
            elif entry.is_dir():
                files = _files(entry, root)
                if not files:
                    out.append(Submission(entry.name, str(entry), str(entry), "the folder is empty"))
                out += [_submission(entry.name, f, root) for f in files]
    return out


def _files(folder: Path, root: Path) -> list[Path]:
    """The files of a student's folder, without following links out of the class folder."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):  # never descends into linked folders
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        found += [Path(dirpath, f) for f in filenames if not _hidden(f)]
        found += [Path(dirpath, d) for d in dirnames if Path(dirpath, d).is_symlink()]
    return sorted(found)


def _submission(student: str, path: Path, root: Path | None) -> Submission:
    problem = None
    if root is not None and (path.is_symlink() and _outside(path, root)):
        problem = "a link to a file outside the class folder (not followed)"
    elif path.is_dir():
        problem = "a linked folder (not followed)"
    elif path.suffix != ".ipynb":
        problem = f"not a notebook (expected a .ipynb file, got {path.name!r})"
    elif not os.access(path, os.R_OK):
        problem = "the file cannot be read"
    return Submission(student, str(path), str(path), problem)


def assignment(graded: list[tuple[str, NotebookReport]], lessons: list[int] | None) -> list[int]:
    """The lessons graded: those given, else every lesson some notebook of the class was graded on."""
    if lessons:
        return sorted(set(lessons))
    return sorted({e.lesson for _, r in graded for e in r.exercises})


def rows(
    graded: list[tuple[str, NotebookReport]], lessons: list[int] | None = None
) -> tuple[list[str], list[list]]:
    """The gradebook: header and one row per student, every row out of the assignment's maximum."""
    from tfmcourse.checks import EXERCISES

    chosen = assignment(graded, lessons)
    columns = [n for n, e in EXERCISES.items() if e.lesson in chosen]
    students: dict[str, dict] = {}
    for student, r in graded:
        s = students.setdefault(student, {"points": {}, "notes": []})
        for e in r.exercises:
            if e.name in columns:
                s["points"][e.name] = max(s["points"].get(e.name, 0), e.points)
        name = Path(r.path).name
        if r.error:
            s["notes"].append(f"{name}: {r.error}")
        elif r.exercises and not any(e.name in columns for e in r.exercises):
            s["notes"].append(f"{name}: not part of the assignment (lessons {', '.join(map(str, chosen))})")
    header = ["student", *columns, *[f"lesson_{n:02d}" for n in chosen], "total", "max_total", "notes"]
    max_total = sum(EXERCISES[c].points for c in columns)
    table = []
    for student in sorted(students):
        s = students[student]
        pts = [s["points"].get(c, 0) for c in columns]
        by_lesson = [sum(p for c, p in zip(columns, pts) if EXERCISES[c].lesson == n) for n in chosen]
        table.append([student, *pts, *by_lesson, sum(pts), max_total, "; ".join(s["notes"])])
    return header, table


def maxima(lessons: list[int]) -> dict[str, int]:
    """Maximum points per lesson of the assignment (``"06"``: 9) and in total."""
    from tfmcourse.checks import EXERCISES

    out = {f"{n:02d}": sum(e.points for e in EXERCISES.values() if e.lesson == n) for n in lessons}
    return {**out, "total": sum(out.values())}


def write_csv(
    graded: list[tuple[str, NotebookReport]], path: str | os.PathLike, lessons: list[int] | None = None
) -> None:
    header, table = rows(graded, lessons)
    with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)


def render_summary(graded: list[tuple[str, NotebookReport]], lessons: list[int] | None = None) -> str:
    """One line per student: total, per lesson, and the files that could not be graded."""
    header, table = rows(graded, lessons)
    per_lesson = [h for h in header if h.startswith("lesson_")]
    width = max([len("student")] + [len(r[0]) for r in table])
    first = len(header) - 3 - len(per_lesson)
    lines = [f"{'student'.ljust(width)}  {'points':>9}  " + "  ".join(per_lesson) + "  notes"]
    for r in table:
        lessons_txt = "  ".join(f"{v:>9}" for v in r[first : first + len(per_lesson)])
        lines.append(f"{str(r[0]).ljust(width)}  {r[-3]:>4}/{r[-2]:<4}  {lessons_txt}  {r[-1]}")
    return "\n".join(lines) + "\n"
