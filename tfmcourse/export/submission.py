"""Grade one learner's upload (a folder of notebooks) on the exercises of the exported lessons.

Platforms hand the grader whatever the learner uploaded: the right notebook,
a renamed copy (``06_scaled_dot_product_attention (2).ipynb``, ``homework.ipynb``),
several notebooks, a file that is not a notebook at all. :func:`grade_upload`

1. finds the notebook of each lesson (named ``NN_…​.ipynb``; with one lesson
   and one notebook, that notebook whatever its name; with several for one
   lesson, the one with the exercise notebook's exact name, else none),
2. copies it under a name the grader recognises (``NN_submission.ipynb``) into
   a private folder (the upload itself is never modified),
3. runs ``python -m tfmcourse grade --secure … --json … --seed N`` in a
   subprocess, and
4. returns one :class:`Outcome` per exercise of the lessons, in course order,
   including the ones the upload did not contain (0 points, with why).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
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
    notebooks: dict[int, str | None]  # lesson -> the uploaded notebook graded for it
    unreadable: dict[str, str] = field(default_factory=dict)  # uploaded name -> why it cannot be read
    notes: list[str] = field(default_factory=list)  # everything else the learner should know

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_score(self) -> int:
        return sum(o.max_points for o in self.outcomes)


def _display(path: Path, folder: Path) -> str:
    """A file's name inside the upload as text (bytes that are not UTF-8 shown as U+FFFD)."""
    return os.fsencode(path.relative_to(folder).as_posix()).decode("utf-8", "replace")


def _uploaded_notebooks(folder: Path) -> tuple[list[Path], list[str]]:
    """Notebooks anywhere in the upload and the names of other files (hidden folders skipped).

    Symbolic links are never followed: a link is listed with the other files, not read.
    """
    notebooks, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder):  # does not descend into linked folders
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        others.extend(_display(here / d, folder) for d in dirnames if (here / d).is_symlink())
        for name in sorted(filenames):
            f = here / name
            if name.startswith("."):
                continue
            if f.suffix == ".ipynb" and not f.is_symlink() and f.is_file():
                notebooks.append(f)
            else:
                others.append(_display(f, folder))
    return sorted(notebooks), sorted(others)


def match_lessons(notebooks: list[Path], config: GraderConfig) -> tuple[dict[int, Path | None], list[str]]:
    """The uploaded notebook of each lesson, by its ``NN_`` prefix, and notes on the others.

    With a single lesson and a single notebook, the notebook belongs to that lesson
    whatever its name (uploads are often renamed). A lesson with several notebooks
    is graded on the one with the expected name; without it, on none (grading them
    all and keeping the best would reward uploading many variants).
    """
    lessons = config.lessons
    candidates: dict[int, list[Path]] = {lesson: [] for lesson in lessons}
    for nb in notebooks:
        m = re.match(r"(\d+)_", nb.name)
        if m and int(m.group(1)) in candidates:
            candidates[int(m.group(1))].append(nb)
    if len(lessons) == 1 and len(notebooks) == 1:
        candidates[lessons[0]] = list(notebooks)
    chosen: dict[int, Path | None] = {}
    notes = []
    for lesson, found in candidates.items():
        exact = [p for p in found if p.name == config.notebook_for(lesson)]
        if len(found) == 1 or len(exact) == 1:
            chosen[lesson] = exact[0] if exact else found[0]
            skipped = [p.name for p in found if p != chosen[lesson]]
            if skipped:
                notes.append(
                    f"lesson {lesson}: graded {chosen[lesson].name}; not graded: {', '.join(skipped)}"
                )
        else:
            chosen[lesson] = None
            if found:
                notes.append(
                    f"lesson {lesson}: several notebooks ({', '.join(p.name for p in found)}) and none named "
                    f"{config.notebook_for(lesson)}: none was graded; upload only one"
                )
    unused = [p.name for p in notebooks if p not in {c for cs in candidates.values() for c in cs}]
    if unused:
        expected = ", ".join(config.notebook_for(n) for n in lessons)
        notes.append(
            f"not graded (no lesson recognised in the name; expected {expected}): {', '.join(unused)}"
        )
    return chosen, notes


def grading_deadline(config: GraderConfig) -> float:
    """Seconds the whole grading run may take: start-up plus every exercise at twice its limit."""
    from tfmcourse.grading.secure.sandbox import DEFAULT_TIMEOUT

    per = DEFAULT_TIMEOUT if config.timeout is None else config.timeout
    return 30 + 2 * per * len(lesson_exercises(config.lessons))


def run_grader(
    paths: list[str],
    *,
    seed: int,
    json_path: str,
    config: GraderConfig,
    python: str | None = None,
    deadline: float | None = None,
) -> dict:
    """Run ``tfmcourse grade --secure`` on ``paths``; its JSON report (:class:`GradingFailed` if none).

    Past ``deadline`` seconds (default :func:`grading_deadline`) the grader and every
    process it started are killed.
    """
    cmd = [python or sys.executable, "-m", "tfmcourse", "grade", "--secure", *paths]
    cmd += ["--json", json_path, "--seed", str(seed), "--jobs", "1"]
    if config.timeout is not None:
        cmd += ["--timeout", str(config.timeout)]
    if config.memory is not None:
        cmd += ["--memory", str(config.memory)]
    deadline = grading_deadline(config) if deadline is None else deadline
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the grader and everything it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)
        raise GradingFailed(f"the grader did not finish within {deadline:g} s") from None
    # The platform keeps our stdout for the instructor (never shown to learners).
    sys.stdout.write(stdout[-20000:])
    sys.stdout.write(stderr[-20000:])
    try:
        with open(json_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise GradingFailed(
            f"the grader exited with status {proc.returncode} and wrote no report ({exc}); "
            f"last output: {stderr.strip()[-500:]}"
        ) from None


def grade_upload(
    folder: str | os.PathLike, config: GraderConfig, *, python: str | None = None
) -> GradedUpload:
    """Grade the notebooks in ``folder`` on every exercise of ``config.lessons``."""
    folder = Path(folder)
    from tfmcourse.grading.secure import new_seed

    seed = new_seed() if config.seed is None else int(config.seed)
    notebooks, others = _uploaded_notebooks(folder) if folder.is_dir() else ([], [])
    chosen, notes = match_lessons(notebooks, config)
    upload = GradedUpload(
        seed=seed,
        outcomes=[],
        notebooks={k: _display(p, folder) if p else None for k, p in chosen.items()},
        notes=notes,
    )
    if others:
        upload.notes.append(f"ignored (not notebooks): {', '.join(others)}")

    results: dict[str, dict] = {}  # exercise name -> its result
    with tempfile.TemporaryDirectory(prefix="tfmcourse-grade-") as tmp:
        staged: dict[str, str] = {}  # staged path -> uploaded name
        for lesson, p in chosen.items():
            if p is not None:
                dest = Path(tmp) / f"{lesson:02d}_submission.ipynb"
                shutil.copyfile(p, dest)
                staged[str(dest)] = upload.notebooks[lesson]
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
                if nb.get("error"):  # its exercises are listed too, each with the same error
                    upload.unreadable[uploaded] = str(nb["error"])
                    continue
                for ex in nb.get("exercises", []):
                    results.setdefault(ex["name"], ex)

    for number, e in lesson_exercises(config.lessons):
        r = results.get(e.name)
        if r is not None:
            status = r["status"]
            points = e.points if status == "passed" else 0
            message, reason = r.get("message") or "", r.get("reason") or ""
        else:
            name = upload.notebooks.get(e.lesson)
            if name is None:
                reason = (
                    f"no notebook for lesson {e.lesson} was graded (expected {config.notebook_for(e.lesson)})"
                )
            elif name in upload.unreadable:
                reason = f"not graded: {name} could not be read ({upload.unreadable[name]})"
            else:
                reason = "not graded"
            status, points, message = "not attempted", 0, f"{e.name}: {reason}"
        upload.outcomes.append(
            Outcome(number, e.name, e.title, e.lesson, status, points, e.points, message, reason)
        )
    return upload
