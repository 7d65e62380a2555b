"""What an exported grader carries: the course package, its pinned dependencies and a config.

An autograder runs on a machine that has never seen the course, so it ships
its own copy of the package (``tfmcourse/``, about half a megabyte) with the
files that pin what to install (``requirements.txt``, ``constraints.txt``,
``pyproject.toml``) and a small ``tfmcourse-grader.json`` that says which
lessons it grades and with which limits.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tfmcourse.checks import Exercise

# Files at the course root that installing the package needs (pyproject reads the README).
ROOT_FILES = ("pyproject.toml", "requirements.txt", "constraints.txt", "LICENSE", "README.md")
CONFIG_NAME = "tfmcourse-grader.json"
# The CPU-only build of torch: the course pins torch==2.13.0 and is tested on that build.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class ExportError(ValueError):
    """The export cannot be written as asked (unknown lesson, missing course files, …)."""


@dataclass
class GraderConfig:
    """Settings an exported grader reads at grading time."""

    lessons: list[int]
    notebooks: dict[str, str]  # lesson number (as text: JSON keys) -> the notebook's expected file name
    timeout: float | None = None  # seconds per exercise (None: the grader's default)
    memory: int | None = None  # MiB per exercise (None: the grader's default)
    seed: int | None = None  # None: a fresh hidden seed for every submission
    course_version: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> GraderConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**data)

    def notebook_for(self, lesson: int) -> str:
        return self.notebooks.get(str(lesson), f"{lesson:02d}_notebook.ipynb")


def lesson_exercises(lessons: list[int]) -> list[tuple[str, Exercise]]:
    """``[("6.3", Exercise), …]``: every exercise of the lessons, in course order, with its number."""
    from tfmcourse.checks import EXERCISES

    out = []
    for lesson in sorted(set(lessons)):
        mine = [e for e in EXERCISES.values() if e.lesson == lesson]
        out.extend((f"{lesson}.{i}", e) for i, e in enumerate(mine, start=1))
    return out


def validate_lessons(lessons: list[int]) -> list[int]:
    """The lessons, sorted and unique; :class:`ExportError` naming the graded ones if any is unknown."""
    from tfmcourse.checks import EXERCISES

    graded = sorted({e.lesson for e in EXERCISES.values()})
    if not lessons:
        raise ExportError(f"give at least one --lesson (graded lessons: {', '.join(map(str, graded))})")
    unknown = sorted(set(lessons) - set(graded))
    if unknown:
        raise ExportError(
            f"lesson {', '.join(map(str, unknown))} has no graded exercises "
            f"(graded lessons: {', '.join(map(str, graded))})"
        )
    return sorted(set(lessons))


def exercise_notebooks(root: Path, lessons: list[int]) -> dict[str, str]:
    """The exercise notebook of each lesson, by file name (``{"6": "06_scaled_dot_product_attention.ipynb"}``)."""
    out = {}
    for lesson in lessons:
        found = sorted((root / "exercises").glob(f"{lesson:02d}_*.ipynb"))
        if not found:
            raise ExportError(f"no exercise notebook for lesson {lesson} in {root / 'exercises'}")
        out[str(lesson)] = found[0].name
    return out


def course_files(root: Path) -> list[tuple[Path, str]]:
    """``(file, name inside the bundle)`` for the package and the files that pin its installation."""
    missing = [n for n in (*ROOT_FILES, "tfmcourse/__init__.py") if not (root / n).is_file()]
    if missing:
        raise ExportError(f"{root} is not a complete course folder: missing {', '.join(missing)}")
    files = [(root / n, n) for n in ROOT_FILES]
    for f in sorted((root / "tfmcourse").rglob("*")):
        rel = f.relative_to(root)
        if f.is_file() and "__pycache__" not in rel.parts and f.suffix not in (".pyc", ".pyo"):
            files.append((f, rel.as_posix()))
    return files


def course_version(root: Path) -> str:
    m = re.search(r'__version__\s*=\s*"([^"]+)"', (root / "tfmcourse" / "__init__.py").read_text())
    return m.group(1) if m else ""


def requirement_pin(root: Path, package: str) -> str:
    """The pinned requirement of ``package`` in ``requirements.txt`` (e.g. ``torch==2.13.0``)."""
    for line in (root / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if re.match(rf"{re.escape(package)}\s*==", line):
            return line.replace(" ", "")
    raise ExportError(f"requirements.txt does not pin {package}")


def write_json(data: dict, path: str | Path) -> None:
    """Write JSON as UTF-8; names that are not valid UTF-8 (file names are bytes) stay as ``\\udcXX`` escapes."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    Path(path).write_bytes(text.encode("utf-8", "backslashreplace"))
