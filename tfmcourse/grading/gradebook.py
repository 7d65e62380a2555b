"""Class gradebooks for ``tfmcourse grade --secure submissions/``.

Layout of a class folder (nothing in it is ever written)::

    submissions/
        alice/06_attention.ipynb
        alice/07_multi_head.ipynb
        bob/06_attention.ipynb
        carol.ipynb                  # a notebook directly in the folder: student "carol"

CSV (``--csv FILE``): one row per student, sorted by name; the columns are
``student``, one per exercise (in course order: the points scored, the best
over that student's notebooks), ``total``, ``max_total`` and ``notes`` (files
that could not be graded and why). JSON (``--json FILE``): the report format
of ``tfmcourse grade`` with a ``student`` per notebook and the grading
settings (including the hidden seed, so a run can be reproduced).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tfmcourse.grading.report import NotebookReport


@dataclass(frozen=True)
class Submission:
    student: str
    path: str  # the file to read
    display: str  # how it is named in reports (relative to the folder given)
    problem: str | None  # why it cannot be graded at all (not a notebook, …), else None


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def collect(paths: list[str]) -> list[Submission]:
    """Every file to grade. A folder is a class: ``folder/<student>/…`` or ``folder/<student>.ipynb``."""
    out: list[Submission] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {given}")
        if p.is_file():  # a notebook named on the command line: its path is the "student"
            out.append(_submission(str(p), p, str(p)))
            continue
        for entry in sorted(p.iterdir(), key=lambda e: e.name):
            if _hidden(entry.name):
                continue
            if entry.is_file():
                out.append(_submission(entry.stem, entry, str(entry)))
            elif entry.is_dir():
                files = [
                    f
                    for f in sorted(entry.rglob("*"))
                    if f.is_file() and not any(_hidden(part) for part in f.relative_to(entry).parts)
                ]
                if not files:
                    out.append(Submission(entry.name, str(entry), str(entry), "the folder is empty"))
                for f in files:
                    out.append(_submission(entry.name, f, str(f)))
    return out


def _submission(student: str, path: Path, display: str) -> Submission:
    problem = None
    if path.suffix != ".ipynb":
        problem = f"not a notebook (expected a .ipynb file, got {path.name!r})"
    elif not os.access(path, os.R_OK):
        problem = "the file cannot be read"
    return Submission(student, str(path), display, problem)


def exercise_columns(reports: list[NotebookReport]) -> list[str]:
    """Every exercise graded in any notebook, in the course's order."""
    from tfmcourse.checks import EXERCISES

    seen = {e.name for r in reports for e in r.exercises}
    return [n for n in EXERCISES if n in seen] + sorted(seen - set(EXERCISES))


def rows(graded: list[tuple[str, NotebookReport]]) -> tuple[list[str], list[list]]:
    """The gradebook: header and one row per student."""
    reports = [r for _, r in graded]
    columns = exercise_columns(reports)
    maxima = {e.name: e.max_points for r in reports for e in r.exercises}
    students: dict[str, dict] = {}
    for student, r in graded:
        s = students.setdefault(student, {"points": {}, "notes": []})
        for e in r.exercises:
            s["points"][e.name] = max(s["points"].get(e.name, 0), e.points)
        if r.error:
            s["notes"].append(f"{Path(r.path).name}: {r.error}")
    header = ["student", *columns, "total", "max_total", "notes"]
    table = []
    for student in sorted(students):
        s = students[student]
        pts = [s["points"].get(c, 0) for c in columns]
        table.append([student, *pts, sum(pts), sum(maxima[c] for c in columns), "; ".join(s["notes"])])
    return header, table


def write_csv(graded: list[tuple[str, NotebookReport]], path: str | os.PathLike) -> None:
    header, table = rows(graded)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)


def write_json(graded: list[tuple[str, NotebookReport]], path: str | os.PathLike, **settings) -> None:
    data = {
        "notebooks": [{"student": s, **r.to_dict()} for s, r in graded],
        "secure": {k: v for k, v in settings.items()},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def render_summary(graded: list[tuple[str, NotebookReport]]) -> str:
    """One line per student: total and the files that could not be graded."""
    _header, table = rows(graded)
    width = max([len("student")] + [len(r[0]) for r in table])
    lines = [f"{'student'.ljust(width)}  {'points':>9}  notes"]
    for r in table:
        lines.append(f"{str(r[0]).ljust(width)}  {r[-3]:>4}/{r[-2]:<4}  {r[-1]}")
    return "\n".join(lines) + "\n"
