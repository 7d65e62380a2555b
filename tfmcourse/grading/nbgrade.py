"""``tfmcourse grade NOTEBOOK...``: run notebooks through pytest + nbval and report per exercise.

Each notebook runs in its own kernel (nbval, lax mode: every cell must run,
outputs are not compared). A check cell is a cell that calls
``check_<name>(...)``; its outcome gives the exercise's status:

- ``passed``: the check ran without raising;
- ``failed``: it raised ``CheckFailed`` (the message says what is wrong);
- ``not attempted``: the exercise still raises the stub's ``NotImplementedError``,
  or the notebook has no check cell for an exercise of its lesson;
- ``error``: anything else (e.g. the exercise's definition cell had a syntax
  error, so the check cell met a ``NameError``).

The graded notebook is never modified. The exit status is 0 whenever grading
ran, whatever the score; 2 when a notebook could not be graded at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tfmcourse.checks import EXERCISES
from tfmcourse.grading.report import ExerciseResult, NotebookReport, render_table, write_json

CHECK_CALL = re.compile(r"^\s*check_(\w+)\s*\(", re.MULTILINE)
LESSON_PREFIX = re.compile(r"^(\d{2})_")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lesson_of(path: Path) -> int | None:
    m = LESSON_PREFIX.match(Path(path).name)
    return int(m.group(1)) if m else None


def _run_nbval(path: Path, timeout: float) -> tuple[list[dict], str]:
    with tempfile.TemporaryDirectory(prefix="tfmcourse-grade-") as tmp:
        out = Path(tmp) / "cells.jsonl"
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")  # ignore the course's own pytest config
        env = dict(os.environ, TFMCOURSE_GRADE_OUT=str(out), PYTHONDONTWRITEBYTECODE="1")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(path.resolve()),
            "-c",
            str(ini),
            "--rootdir",
            tmp,
            "-p",
            "tfmcourse.grading.nbplugin",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--nbval-lax",
            "--nbval-current-env",
            f"--nbval-cell-timeout={timeout:g}",
            "-q",
            "--color=no",
        ]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        records = []
        if out.exists():
            records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]
        return records, proc.stdout[-3000:] + proc.stderr[-2000:]


def _classify(record: dict | None) -> tuple[str, str]:
    if record is None:
        return "error", "the check cell did not run (an earlier cell timed out or the kernel died)"
    if record["outcome"] == "passed":
        return "passed", ""
    if record["outcome"] == "skipped":
        return "error", "the check cell was skipped (an earlier cell timed out)"
    ename, evalue = record.get("ename"), _ANSI.sub("", record.get("evalue") or "")
    if ename == "ExerciseNotAttempted":
        return "not attempted", evalue
    if ename == "CheckFailed":
        return "failed", evalue
    if ename == "NotImplementedError":
        return "not attempted", evalue
    if ename:
        return "error", f"{ename}: {evalue}"
    return "error", _ANSI.sub("", record.get("detail") or "the cell failed")[-800:]


def grade_notebook(path: str | Path, *, timeout: float = 600) -> NotebookReport:
    path = Path(path)
    report = NotebookReport(str(path))
    if not path.is_file():
        report.error = "no such file"
        return report
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.error = f"not a notebook (invalid JSON: {exc})"
        return report
    records, log = _run_nbval(path, timeout)
    collect_errors = [r for r in records if r["kind"] == "collect-error"]
    cells = [r for r in records if r["kind"] == "cell"]
    if collect_errors or not cells:
        detail = collect_errors[0]["detail"] if collect_errors else log
        report.error = "the notebook could not be run: " + _ANSI.sub("", detail).strip()[-600:]
        return report
    found: dict[str, dict] = {}
    for r in cells:
        for name in CHECK_CALL.findall(r["source"]):
            if name in EXERCISES and name not in found:
                found[name] = r
    lesson = lesson_of(path)
    expected = [e for e in EXERCISES.values() if e.lesson == lesson or e.name in found]
    for ex in sorted(expected, key=lambda e: (e.lesson, list(EXERCISES).index(e.name))):
        if ex.name not in found:
            status, msg = "not attempted", f"the notebook has no check cell `check_{ex.name}({ex.name})`"
        else:
            status, msg = _classify(found[ex.name])
        report.exercises.append(ExerciseResult(ex.name, ex.lesson, status, ex.points, ex.points, msg))
    return report


def main(args) -> int:
    reports = [grade_notebook(p, timeout=args.timeout or 600) for p in args.paths]
    print(render_table(reports), end="")
    if args.json:
        write_json(reports, args.json)
    return 2 if any(r.error for r in reports) else 0
