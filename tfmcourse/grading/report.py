"""Results of grading, shared by ``tfmcourse grade`` and ``tfmcourse grade --secure``.

JSON format (``--json FILE``)::

    {"notebooks": [{"path": ..., "score": 3, "max_score": 4, "error": null,
                    "exercises": [{"name", "lesson", "status", "points", "max_points",
                                   "message", "reason"}]}]}

``status`` is one of ``passed``, ``failed``, ``not attempted``, ``error``.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, field

STATUSES = ("passed", "failed", "not attempted", "error")


@dataclass
class ExerciseResult:
    name: str
    lesson: int
    status: str
    points: int
    max_points: int
    message: str = ""
    reason: str = ""  # secure mode: why it scored what it scored

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.status != "passed":
            self.points = 0


@dataclass
class NotebookReport:
    path: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None  # grading itself could not run this notebook

    @property
    def score(self) -> int:
        return sum(e.points for e in self.exercises)

    @property
    def max_score(self) -> int:
        return sum(e.max_points for e in self.exercises)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "score": self.score,
            "max_score": self.max_score,
            "error": self.error,
            "exercises": [asdict(e) for e in self.exercises],
        }


def to_json(reports: list[NotebookReport]) -> dict:
    return {"notebooks": [r.to_dict() for r in reports]}


def write_json(reports: list[NotebookReport], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(reports), f, indent=2, ensure_ascii=False)
        f.write("\n")


_MARK = {"passed": "✓", "failed": "✗", "not attempted": "·", "error": "!"}


def render_table(reports: list[NotebookReport], *, width: int = 100) -> str:
    """A plain-text table per notebook: exercise, status, points, and the message of failures."""
    lines: list[str] = []
    for r in reports:
        lines.append(f"{r.path}: {r.score}/{r.max_score} points")
        if r.error:
            lines.append(f"  could not grade: {r.error}")
        if not r.exercises:
            lines.append("")
            continue
        w = max(len(e.name) for e in r.exercises)
        lines.append(f"  {'exercise'.ljust(w)}  {'lesson':>6}  {'status':<15} points")
        for e in r.exercises:
            lines.append(
                f"  {e.name.ljust(w)}  {e.lesson:>6}  {_MARK[e.status]} {e.status:<13} "
                f"{e.points}/{e.max_points}"
            )
            detail = e.message or e.reason
            if e.status != "passed" and detail:
                for para in detail.strip().splitlines()[:12]:
                    lines.extend(
                        textwrap.wrap(
                            para, width=width - 6, initial_indent="      ", subsequent_indent="        "
                        )
                        or [""]
                    )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
