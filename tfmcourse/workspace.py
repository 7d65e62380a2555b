"""The learner's workspace: a git-ignored ``work/`` folder holding copies of the course.

Learners never work in tracked files. :func:`sync` copies ``notebooks/`` and
``exercises/`` into ``work/`` with the same relative layout (so every link
between notebooks still works), copies in notebooks that are new after a
``git pull``, and never overwrites a file that is already there: whatever is
in ``work/`` is the learner's. When the course's version of a copied file has
changed since it was copied, it says so (the learner decides). ``solutions/`` is for instructors and is not
copied. :func:`lab_command` is how ``make lab`` starts JupyterLab, rooted at
the workspace and opened on the first lesson.

A Korean edition, when built, lives in ``ko/notebooks`` and ``ko/exercises``;
``lang="ko"`` copies those into ``work/ko/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

COPIED = ("notebooks", "exercises")
FIRST_LESSON = "notebooks/00_start_here.ipynb"
MARKER = ".tfmcourse-workspace"  # a JSON file that says "this folder is a learner's workspace"
SKIPPED = {".ipynb_checkpoints", "__pycache__"}
EDITIONS = {"en": "", "ko": "ko"}  # edition -> folder of its notebooks, relative to the course root


class WorkspaceError(RuntimeError):
    """The workspace cannot be set up (unknown edition, edition not built, missing folders)."""


@dataclass
class SyncReport:
    workspace: Path
    copied: list[str] = field(default_factory=list)  # relative paths copied in this run
    kept: list[str] = field(default_factory=list)  # relative paths already there, left alone
    changed: list[str] = field(default_factory=list)  # kept, but the course's version is newer

    def summary(self) -> str:
        if not self.kept:
            return f"created {self.workspace} with {len(self.copied)} course files"
        if self.copied:
            text = (
                f"{self.workspace}: copied in {len(self.copied)} new course file(s) "
                f"({', '.join(self.copied)}); your {len(self.kept)} file(s) are untouched"
            )
        else:
            text = f"{self.workspace}: up to date; your {len(self.kept)} file(s) are untouched"
        if self.changed:
            text += (
                f"\nThe course has a newer version of {', '.join(self.changed)}: to get it, rename or "
                "delete your copy in the workspace and run this again (your copy is never overwritten)."
            )
        return text


def edition_root(course: Path, lang: str = "en") -> Path:
    """The folder holding the edition's ``notebooks/`` and ``exercises/``."""
    if lang not in EDITIONS:
        raise WorkspaceError(f"unknown course language {lang!r}: choose one of {', '.join(EDITIONS)}")
    src = Path(course) / EDITIONS[lang]
    missing = [d for d in COPIED if not (src / d).is_dir()]
    if missing:
        where = ", ".join(str(src / d) for d in missing)
        raise WorkspaceError(f"the {lang!r} edition is not available: no {where}")
    return src


def workspace_dir(course: Path, lang: str = "en") -> Path:
    """``work/`` for the English course, ``work/<lang>/`` for another edition."""
    work = Path(course) / "work"
    return work / EDITIONS[lang] if EDITIONS.get(lang) else work


def _course_files(src: Path):
    for top in COPIED:
        for path in sorted((src / top).rglob("*")):
            rel = path.relative_to(src)
            if (
                path.is_file()
                and not SKIPPED.intersection(rel.parts)
                and not path.name.endswith(".bak.ipynb")
            ):
                yield rel


def sync(course: Path, lang: str = "en", workspace: Path | None = None) -> SyncReport:
    """Create or refresh the workspace; never overwrite a file that is already there."""
    course = Path(course).resolve()
    src = edition_root(course, lang)
    work = Path(workspace) if workspace else workspace_dir(course, lang)
    report = SyncReport(work)
    copied_from = _read_marker(work).get("copied", {})  # relative path -> hash of the course file copied
    for rel in _course_files(src):
        key, target = rel.as_posix(), work / rel
        if target.exists():
            report.kept.append(key)
            if key in copied_from and copied_from[key] != _sha256(src / rel):
                report.changed.append(key)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
        copied_from[key] = _sha256(src / rel)
        report.copied.append(key)
    marker = {"course": str(course), "lang": lang, "copied": copied_from}
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return report


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_marker(work: Path) -> dict:
    try:
        data = json.loads((Path(work) / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def find_workspace(start: Path | None = None) -> Path | None:
    """The workspace that contains ``start`` (default: the current folder), if any."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / MARKER).is_file():
            return d
    return None


def lab_command(jupyter: str | Path, workspace: Path, extra: list[str] = ()) -> list[str]:
    """The JupyterLab command line: rooted at the workspace, opened on the first lesson.

    Run it with the workspace as the current folder.
    """
    return [str(jupyter), "lab", f"--ServerApp.root_dir={Path(workspace).resolve()}", *extra, FIRST_LESSON]
