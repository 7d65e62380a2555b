"""Gradebooks an LMS imports: ``tfmcourse grade --secure DIR --roster ROSTER.csv --lms-csv FILE``.

The roster is the LMS's own gradebook export (Canvas: Grades → Export), or
any CSV with the same identity columns: ``Student``, ``ID``, ``SIS User ID``,
``SIS Login ID``, ``Section`` (``Student`` and one identifier are required).
The output is Canvas's gradebook import format: those columns taken from the
roster, then one column per graded lesson (``tfmcourse lesson 06``, the
points of that lesson's exercises, best over the learner's notebooks) and,
for Canvas, a ``Points Possible`` row that sets each new column's maximum.
``--lms-column 6="Lesson 6 (12345)"`` names a lesson's column after an
assignment that already exists (Canvas matches ``Name (id)``), so the
points land there instead of in a new assignment.
``--lms-format moodle`` writes the same file without that row (Moodle's CSV
grade import maps one identifier column, e.g. ``SIS Login ID`` to the email
address or ``ID`` to the ID number, and every other row must be a learner).

Submission folders are matched to roster rows by ``SIS Login ID`` (also its
part before ``@``), ``SIS User ID`` or ``ID``, then by the user ID in a
Canvas download name (``smithalice_late_12345_67890_06_….ipynb``), then by
the name when it is unique. A submission that matches no row, or several,
is never dropped silently: it is reported (stderr and the JSON report) and
left out of the file. Roster learners with nothing handed in get 0.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
IDENTIFIERS = ("SIS Login ID", "SIS User ID", "ID")
FORMATS = ("canvas", "moodle")


class RosterError(ValueError):
    """The roster cannot be used (missing file or columns, no learners)."""


@dataclass
class Roster:
    columns: list[str]  # identity columns present, in Canvas's order
    rows: list[dict[str, str]]


@dataclass
class LmsResult:
    columns: list[str]  # the lesson columns written
    matched: dict[int, list[str]]  # roster row (its index) -> submission folders credited to it
    unmatched: list[dict] = field(default_factory=list)  # {"student", "reason", "score"}
    missing: list[str] = field(default_factory=list)  # roster learners with nothing graded

    def to_dict(self) -> dict:
        return {
            "columns": self.columns,
            "matched": len(self.matched),
            "unmatched": self.unmatched,
            "missing": self.missing,
        }


def _norm(s: str) -> str:
    return unicodedata.normalize("NFKC", s).strip().casefold()


def _name_key(s: str) -> str:
    return re.sub(r"[\W_]+", "", _norm(s))


def read_roster(path: str | Path) -> Roster:
    """The learners of a roster CSV (an LMS gradebook export works as is)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RosterError(f"no such roster: {path}") from None
    except UnicodeDecodeError:
        raise RosterError(f"{path} is not UTF-8 text (save the roster as CSV UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if "Student" not in header or not any(i in header for i in IDENTIFIERS):
        raise RosterError(
            f"{path}: a roster needs a 'Student' column and at least one of {', '.join(IDENTIFIERS)} "
            f"(found: {', '.join(header) or 'no header'}); export the gradebook from the LMS to get one"
        )
    columns = [c for c in IDENTITY if c in header]
    rows = []
    for raw in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        student = row.get("Student", "")
        if not student or "points possible" in student.casefold() or student == "Student, Test":
            continue  # Canvas's maxima row and its test student are not learners
        rows.append({c: row.get(c, "") for c in columns})
    if not rows:
        raise RosterError(f"{path}: the roster lists no learners")
    return Roster(columns, rows)


_CANVAS_DOWNLOAD = re.compile(r"^[^\W_]+_(?:late_)?(\d+)_(\d+)_", re.IGNORECASE)


def match(student: str, roster: Roster) -> tuple[int | None, str]:
    """The roster row of a submission folder (its index), or ``None`` and why."""
    candidates = [student]
    if student.endswith(".ipynb"):  # a notebook graded on its own: its file name, without the suffix
        candidates.append(Path(student).name.removesuffix(".ipynb"))
    for key in candidates:
        k = _norm(key)
        hits = {
            i
            for i, r in enumerate(roster.rows)
            for c in IDENTIFIERS
            if r.get(c) and (_norm(r[c]) == k or (c == "SIS Login ID" and _norm(r[c]).split("@")[0] == k))
        }
        if len(hits) == 1:
            return hits.pop(), ""
        if len(hits) > 1:
            return (
                None,
                f"matches {len(hits)} roster rows ({', '.join(roster.rows[i]['Student'] for i in sorted(hits))})",
            )
    for key in candidates:
        m = _CANVAS_DOWNLOAD.match(key)
        if m:
            hits = {i for i, r in enumerate(roster.rows) if r.get("ID") == m.group(1)}
            if len(hits) == 1:
                return hits.pop(), ""
    names = {_name_key(k) for k in candidates}
    hits = set()
    for i, r in enumerate(roster.rows):
        parts = [p.strip() for p in r["Student"].split(",")]
        forms = {_name_key(r["Student"]), _name_key(" ".join(reversed(parts)))}
        if forms & names:
            hits.add(i)
    if len(hits) == 1:
        return hits.pop(), ""
    if len(hits) > 1:
        return None, f"the name matches {len(hits)} roster rows"
    return None, "matches no roster row (by SIS Login ID, SIS User ID, ID or name)"


def lesson_column(lesson: int) -> str:
    return f"tfmcourse lesson {lesson:02d}"


def parse_columns(specs: list[str]) -> dict[int, str]:
    """``["6=Lesson 6 (12345)"]`` -> ``{6: "Lesson 6 (12345)"}``: lesson columns named after existing assignments."""
    out = {}
    for spec in specs:
        lesson, sep, name = spec.partition("=")
        if not sep or not lesson.strip().isdigit() or not name.strip():
            raise ValueError(f"--lms-column {spec!r}: write LESSON=NAME, e.g. 6='Lesson 6 (12345)'")
        out[int(lesson)] = name.strip()
    return out


def gradebook(
    report: dict, roster: Roster, fmt: str = "canvas", names: dict[int, str] | None = None
) -> tuple[list[list[str]], LmsResult]:
    """The rows of the LMS file (header first) and what was matched, from a class JSON report.

    ``names`` renames lesson columns (e.g. to an existing Canvas assignment, ``Name (id)``).
    """
    from tfmcourse.checks import EXERCISES

    if fmt not in FORMATS:
        raise ValueError(f"unknown LMS format {fmt!r} (one of {', '.join(FORMATS)})")
    notebooks = report.get("notebooks", [])
    lessons = sorted({int(e["lesson"]) for nb in notebooks for e in nb.get("exercises", [])})
    maxima = {lesson: sum(e.points for e in EXERCISES.values() if e.lesson == lesson) for lesson in lessons}
    # Best points per exercise of every submission folder ("student" in the report), then of every
    # roster row (several folders may belong to one learner).
    best: dict[str, dict[tuple[int, str], int]] = {}
    for nb in notebooks:
        s = best.setdefault(str(nb.get("student", nb.get("path", ""))), {})
        for e in nb.get("exercises", []):
            key = (int(e["lesson"]), e["name"])
            s[key] = max(s.get(key, 0), int(e["points"]))
    names = names or {}
    result = LmsResult(columns=[names.get(lesson, lesson_column(lesson)) for lesson in lessons], matched={})
    credited: dict[int, dict[tuple[int, str], int]] = {}
    for student in sorted(best):
        i, why = match(student, roster)
        if i is None:
            result.unmatched.append({"student": student, "reason": why, "score": sum(best[student].values())})
            continue
        result.matched.setdefault(i, []).append(student)
        c = credited.setdefault(i, {})
        for key, points in best[student].items():
            c[key] = max(c.get(key, 0), points)
    header = roster.columns + result.columns
    table = [header]
    if fmt == "canvas":
        pad = [""] * (len(roster.columns) - 1)
        table.append(["Points Possible", *pad, *(str(maxima[lesson]) for lesson in lessons)])
    for i, r in enumerate(roster.rows):
        got = credited.get(i)
        if got is None:
            result.missing.append(r["Student"])
            got = {}
        per_lesson = [sum(p for (ln, _), p in got.items() if ln == lesson) for lesson in lessons]
        table.append([r[c] for c in roster.columns] + [str(p) for p in per_lesson])
    return table, result


def write(
    report: dict, roster: Roster, path: str | Path, fmt: str = "canvas", names: dict[int, str] | None = None
) -> LmsResult:
    table, result = gradebook(report, roster, fmt, names)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)
    return result


def summary(result: LmsResult, path: str) -> str:
    """What to tell the instructor: how many matched, and every submission left out."""
    lines = [
        f"LMS gradebook written to {path}: {len(result.matched)} roster learners with graded work, "
        f"{len(result.missing)} with none (0 points)"
    ]
    if result.unmatched:
        lines.append(
            f"WARNING: {len(result.unmatched)} submission folder(s) match no single roster row and are NOT "
            "in the LMS file (rename the folder to the learner's SIS Login ID, or add them to the roster):"
        )
        lines.extend(f"  {u['student']!r}: {u['reason']} ({u['score']} points)" for u in result.unmatched)
    return "\n".join(lines) + "\n"
