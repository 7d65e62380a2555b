"""A learner's progress: the last outcome of every exercise check run in their workspace.

When a check runs from a learner's exercise notebooks (in ``work/exercises/``,
see :mod:`tfmcourse.workspace`), its outcome — passed, failed or not attempted —
is written to a small JSON file there, ``.tfmcourse-progress.json``. Nothing is
recorded anywhere else (not in the repository, not while grading), so the
course's own files stay clean. ``tfmcourse progress`` and lesson 00 read it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tfmcourse.workspace import find_workspace

PROGRESS_FILE = ".tfmcourse-progress.json"
STATUSES = ("passed", "failed", "not attempted")
SYMBOLS = {"passed": "✓", "failed": "✗", "not attempted": "·"}


def exercise_number(name: str) -> str:
    """``"6.3"``: the lesson, then the exercise's place in its lesson (the stubs' numbering)."""
    from tfmcourse.checks import EXERCISES

    lesson = EXERCISES[name].lesson
    same = [n for n, e in EXERCISES.items() if e.lesson == lesson]
    return f"{lesson}.{same.index(name) + 1}"


def load(workspace: Path) -> dict[str, dict]:
    """``{exercise name: {"status": …, "time": …}}`` recorded in a workspace (empty if none)."""
    path = Path(workspace) / PROGRESS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def record(name: str, status: str, start: Path | None = None) -> Path | None:
    """Note the outcome of a check, if it ran inside a learner's workspace; return the file written."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    here = Path(start or Path.cwd()).resolve()
    workspace = find_workspace(here)
    if workspace is None or (workspace / "exercises") not in (here, *here.parents):
        return None  # only the learner's exercise notebooks count, not a lesson's demonstration
    data = load(workspace)
    data[name] = {"status": status, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = workspace / PROGRESS_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def rows(workspace: Path | None) -> list[tuple[int, str, str, str]]:
    """``(lesson, "6.3", name, status)`` for every registered exercise, in course order."""
    from tfmcourse.checks import EXERCISES

    done = load(workspace) if workspace else {}
    out = []
    for name, ex in sorted(EXERCISES.items(), key=lambda kv: (kv[1].lesson, list(EXERCISES).index(kv[0]))):
        status = done.get(name, {}).get("status", "not attempted")
        out.append(
            (ex.lesson, exercise_number(name), name, status if status in STATUSES else "not attempted")
        )
    return out


def render(workspace: Path | None) -> str:
    """A plain-text table of the learner's progress, lesson by lesson."""
    if workspace is None:
        return (
            "No workspace found: progress is recorded when you run the exercises from the copy "
            "that `make lab` makes in work/."
        )
    table = rows(workspace)
    lines = []
    for lesson in sorted({r[0] for r in table}):
        mine = [r for r in table if r[0] == lesson]
        n_passed = sum(r[3] == "passed" for r in mine)
        lines.append(f"Lesson {lesson:02d}   {n_passed}/{len(mine)} passed")
        for _, number, name, status in mine:
            lines.append(f"  {SYMBOLS[status]} {number:<5} {name:<30} {status}")
    total = sum(r[3] == "passed" for r in table)
    lines.append(f"\n{total} of {len(table)} exercises passed.")
    return "\n".join(lines)


def show(start: Path | None = None) -> None:
    """Print the progress of the workspace containing ``start`` (default: the current folder)."""
    print(render(find_workspace(start)))
