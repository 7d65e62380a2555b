"""Results of grading, shared by ``tfmcourse grade`` and ``tfmcourse grade --secure``.

JSON format (``--json FILE``), written by :func:`write_json` only::

    {"notebooks": [{"path": ..., "lesson": 6, "score": 3, "max_score": 4, "error": null,
                    "exercises": [{"name", "lesson", "status", "points", "max_points",
                                   "message", "reason"}]}]}

``status`` is one of :class:`Status`. ``error`` says why a notebook could not
be graded or did not run top to bottom (then ``null`` means it did). A class
gradebook adds ``"student"`` to each notebook, and top-level ``"secure"`` (the
settings, including the hidden seed) and ``"assignment"`` (the lessons graded
and their maximum points). Keys are only ever added, never renamed.
"""

from __future__ import annotations

import enum
import json
import os
import textwrap
from dataclasses import asdict, dataclass, field


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"
    ERROR = "error"  # could not be graded: the notebook does not run, or grading itself failed


STATUSES = tuple(s.value for s in Status)


@dataclass
class ExerciseResult:
    name: str
    lesson: int
    status: Status
    points: int
    max_points: int
    message: str = ""
    reason: str = ""  # secure mode: why it scored what it scored

    def __post_init__(self):
        self.status = Status(self.status)  # ValueError for an unknown status
        if self.status != Status.PASSED:
            self.points = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status.value}


@dataclass
class NotebookReport:
    path: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None  # the notebook could not be graded, or did not run top to bottom
    lesson: int | None = None

    @property
    def score(self) -> int:
        return sum(e.points for e in self.exercises)

    @property
    def max_score(self) -> int:
        return sum(e.max_points for e in self.exercises)

    def unreadable(self, reason: str) -> NotebookReport:
        """Mark the notebook as not gradable: 0 of every exercise of its lesson, with the reason."""
        from tfmcourse.checks import EXERCISES

        self.error = reason
        self.exercises = [
            ExerciseResult(e.name, e.lesson, Status.ERROR, 0, e.points, f"{e.name}: {reason}", reason)
            for e in EXERCISES.values()
            if e.lesson == self.lesson
        ]
        return self

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "lesson": self.lesson,
            "score": self.score,
            "max_score": self.max_score,
            "error": self.error,
            "exercises": [e.to_dict() for e in self.exercises],
        }

    @classmethod
    def from_dict(cls, d: dict) -> NotebookReport:
        exercises = [ExerciseResult(**e) for e in d.get("exercises", [])]
        return cls(path=d["path"], exercises=exercises, error=d.get("error"), lesson=d.get("lesson"))


def write_json(path: str | os.PathLike, notebooks: list[dict], **top: object) -> None:
    """The one JSON writer: ``{"notebooks": [...], **top}``, UTF-8, indented.

    File names that are not valid UTF-8 (``surrogateescape``) are kept, escaped.
    """
    text = json.dumps({"notebooks": notebooks, **top}, indent=2, ensure_ascii=False) + "\n"
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)


def to_json(reports: list[NotebookReport]) -> dict:
    return {"notebooks": [r.to_dict() for r in reports]}


_MARK = {Status.PASSED: "✓", Status.FAILED: "✗", Status.NOT_ATTEMPTED: "·", Status.ERROR: "!"}


def render_table(reports: list[NotebookReport], *, width: int = 100) -> str:
    """A plain-text table per notebook: exercise, status, points, and the message of failures."""
    lines: list[str] = []
    for r in reports:
        lines.append(f"{r.path}: {r.score}/{r.max_score} points")
        if r.error:
            lines.append(f"  error: {r.error}")
        if not r.exercises:
            lines.append("")
            continue
        w = max(len(e.name) for e in r.exercises)
        lines.append(f"  {'exercise'.ljust(w)}  {'lesson':>6}  {'status':<15} points")
        for e in r.exercises:
            status = e.status.value
            lines.append(
                f"  {e.name.ljust(w)}  {e.lesson:>6}  {_MARK[e.status]} {status:<13} {e.points}/{e.max_points}"
            )
            detail = e.message or e.reason
            if e.status != Status.PASSED and detail:
                for para in detail.strip().splitlines()[:12]:
                    wrapped = textwrap.wrap(
                        para, width=width - 6, initial_indent="      ", subsequent_indent="        "
                    )
                    lines.extend(wrapped or [""])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
