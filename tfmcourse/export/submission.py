"""Grade one learner's upload (a folder of notebooks) on the exercises of the exported lessons.

Platforms hand the grader whatever the learner uploaded: the right notebook,
a renamed copy (``06_scaled_dot_product_attention (2).ipynb``, ``homework.ipynb``),
several notebooks, a file that is not a notebook at all. :func:`grade_upload`

1. finds the notebook of each lesson (named ``NN_…​.ipynb``; with one lesson
   and one notebook, that notebook whatever its name),
2. copies it under a name the grader recognises (``NN_submission.ipynb``) into
   a private folder (the upload itself is never modified),
3. runs ``python -m tfmcourse grade --secure … --json … --seed N`` in a
   subprocess, and
4. returns one :class:`Outcome` per exercise of the lessons, in course order,
   including the ones the upload did not contain (0 points, with why).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tfmcourse.export.bundle import GraderConfig, lesson_exercises


class GradingFailed(RuntimeError):
    """The grader itself did not produce a report (not the learner's fault)."""


@dataclass
class Outcome:
    number: str  # "6.3"
    name: str
    title: str
    lesson: int
    status: str  # passed, failed, not attempted, error (the grader's statuses)
    points: int
    max_points: int
    message: str = ""
    reason: str = ""

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}"


@dataclass
class GradedUpload:
    seed: int
    outcomes: list[Outcome]
    notebooks: dict[int, list[str]]  # lesson -> names of the uploaded notebooks graded for it
    unreadable: dict[str, str] = field(default_factory=dict)  # uploaded name -> why it cannot be read
    notes: list[str] = field(default_factory=list)  # everything else the learner should know

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_score(self) -> int:
        return sum(o.max_points for o in self.outcomes)


def new_seed() -> int:
    """A hidden seed, never 0 (the seed the notebooks show)."""
    return secrets.randbelow(2**31 - 2) + 1


def _uploaded_notebooks(folder: Path) -> tuple[list[Path], list[str]]:
    """Notebooks anywhere in the upload (hidden folders skipped) and the names of other files."""
    notebooks, others = [], []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if any(p.startswith(".") or p == "__pycache__" for p in rel.parts) or not f.is_file():
            continue
        if f.is_symlink():  # never follow a link out of the upload
            others.append(rel.as_posix())
        elif f.suffix == ".ipynb":
            notebooks.append(f)
        else:
            others.append(rel.as_posix())
    return notebooks, others


def match_lessons(notebooks: list[Path], lessons: list[int]) -> dict[int, list[Path]]:
    """The uploaded notebooks of each lesson, by their ``NN_`` prefix.

    With a single lesson and a single notebook, the notebook belongs to that
    lesson whatever its name (uploads are often renamed).
    """
    found: dict[int, list[Path]] = {lesson: [] for lesson in lessons}
    for nb in notebooks:
        m = re.match(r"(\d+)_", nb.name)
        if m and int(m.group(1)) in found:
            found[int(m.group(1))].append(nb)
    if len(lessons) == 1 and len(notebooks) == 1 and not found[lessons[0]]:
        found[lessons[0]] = list(notebooks)
    return found


def run_grader(
    paths: list[str], *, seed: int, json_path: str, config: GraderConfig, python: str | None = None
) -> dict:
    """Run ``tfmcourse grade --secure`` on ``paths``; its JSON report (:class:`GradingFailed` if none)."""
    cmd = [python or sys.executable, "-m", "tfmcourse", "grade", "--secure", *paths]
    cmd += ["--json", json_path, "--seed", str(seed), "--jobs", "1"]
    if config.timeout is not None:
        cmd += ["--timeout", str(config.timeout)]
    if config.memory is not None:
        cmd += ["--memory", str(config.memory)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    # The platform keeps our stdout for the instructor (never shown to learners).
    sys.stdout.write(proc.stdout[-20000:])
    sys.stdout.write(proc.stderr[-20000:])
    try:
        with open(json_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise GradingFailed(
            f"the grader exited with status {proc.returncode} and wrote no report ({exc}); "
            f"last output: {proc.stderr.strip()[-500:]}"
        ) from None


_RANK = {"passed": 3, "failed": 2, "error": 1, "not attempted": 0}


def grade_upload(
    folder: str | os.PathLike, config: GraderConfig, *, python: str | None = None
) -> GradedUpload:
    """Grade the notebooks in ``folder`` on every exercise of ``config.lessons``."""
    folder = Path(folder)
    seed = new_seed() if config.seed is None else int(config.seed)
    notebooks, others = _uploaded_notebooks(folder) if folder.is_dir() else ([], [])
    by_lesson = match_lessons(notebooks, config.lessons)
    upload = GradedUpload(
        seed=seed,
        outcomes=[],
        notebooks={
            lesson: [p.relative_to(folder).as_posix() for p in ps] for lesson, ps in by_lesson.items()
        },
    )
    if others:
        upload.notes.append(f"ignored (not notebooks): {', '.join(others)}")
    used = {p for ps in by_lesson.values() for p in ps}
    unused = [p.relative_to(folder).as_posix() for p in notebooks if p not in used]
    if unused:
        expected = ", ".join(config.notebook_for(n) for n in config.lessons)
        upload.notes.append(
            f"not graded (no lesson recognised in the name; expected {expected}): {', '.join(unused)}"
        )

    results: dict[str, dict] = {}  # exercise name -> best result over the lesson's notebooks
    with tempfile.TemporaryDirectory(prefix="tfmcourse-grade-") as tmp:
        staged: dict[str, str] = {}  # staged path -> uploaded name
        for lesson, paths in by_lesson.items():
            for i, p in enumerate(paths):
                dest = Path(tmp) / f"{lesson:02d}_submission{'_' + str(i + 1) if i else ''}.ipynb"
                shutil.copyfile(p, dest)
                staged[str(dest)] = p.relative_to(folder).as_posix()
        if staged:
            report = run_grader(
                list(staged),
                seed=seed,
                json_path=str(Path(tmp) / "report.json"),
                config=config,
                python=python,
            )
            for nb in report.get("notebooks", []):
                uploaded = staged.get(nb.get("path"), nb.get("path"))
                if nb.get("error"):
                    upload.unreadable[uploaded] = str(nb["error"])
                for ex in nb.get("exercises", []):
                    best = results.get(ex["name"])
                    if best is None or _RANK.get(ex["status"], 0) > _RANK.get(best["status"], 0):
                        results[ex["name"]] = ex

    for number, e in lesson_exercises(config.lessons):
        r = results.get(e.name)
        if r is not None:
            points = int(r.get("points", 0)) if r["status"] == "passed" else 0
            upload.outcomes.append(
                Outcome(
                    number,
                    e.name,
                    e.title,
                    e.lesson,
                    r["status"],
                    points,
                    e.points,
                    r.get("message") or "",
                    r.get("reason") or "",
                )
            )
            continue
        names = upload.notebooks.get(e.lesson) or []
        bad = [n for n in names if n in upload.unreadable]
        if not names:
            why = (
                f"no notebook for lesson {e.lesson} was submitted (expected {config.notebook_for(e.lesson)})"
            )
        elif bad:
            why = f"not graded: {bad[0]} could not be read ({upload.unreadable[bad[0]]})"
        else:
            why = "not graded"
        upload.outcomes.append(
            Outcome(number, e.name, e.title, e.lesson, "not attempted", 0, e.points, f"{e.name}: {why}", why)
        )
    return upload
