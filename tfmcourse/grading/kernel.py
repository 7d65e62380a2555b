"""``tfmcourse grade NOTEBOOK...``: run a notebook top to bottom in a fresh kernel, report per exercise.

The notebook is executed with nbclient (Restart & Run All, from its own
folder); the graded file is never modified. Every cell runs, whatever it
raises, and each cell's outcome is read from its own error output:

- a check cell (a line ``check_<name>(…)``) gives the exercise's status:
  ``passed`` (it ran without raising), ``failed`` (``CheckFailed``: the message
  says what is wrong), ``not attempted`` (the stub's ``NotImplementedError``,
  or no check cell at all), ``error`` (anything else, e.g. a ``NameError``);
- any other cell that raises, or runs past the cell timeout, means the
  notebook does not run top to bottom: the report's ``error`` names the cell,
  and the exercises whose checks come after it are ``error`` too (Restart &
  Run All would have stopped there).

Cell markers (nbval's ``# NBVAL_RAISES_EXCEPTION``, ``# NBVAL_SKIP``, tags
such as ``raises-exception`` or ``skip-execution``) are ignored: they never
change a verdict. This grader trusts the learner's kernel; marks that count
come from ``tfmcourse grade --secure``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tfmcourse.grading import notebook
from tfmcourse.grading.report import ExerciseResult, NotebookReport, Status

DEFAULT_CELL_TIMEOUT = 600.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class CellRun:
    """What happened to one code cell: ``ok``, ``error`` (with the exception) or ``timeout``."""

    index: int  # position among all cells of the notebook (0-based)
    source: str
    outcome: str
    ename: str = ""
    evalue: str = ""

    @property
    def label(self) -> str:
        return f"cell {self.index + 1}"


def run(path: str | os.PathLike, *, timeout: float = DEFAULT_CELL_TIMEOUT) -> list[CellRun]:
    """Execute every code cell of the notebook at ``path`` once, in a fresh kernel; their outcomes.

    Cells after one that timed out, or after the kernel died, are not in the list.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = notebook.read(path)
    for cell in nb.cells:
        cell.metadata = {}  # no tag (skip-execution, raises-exception, …) changes what runs
    client = NotebookClient(
        nb,
        timeout=timeout,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    runs: list[CellRun] = []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                runs.append(CellRun(index, cell.source, "timeout"))
                break
            except DeadKernelError as exc:
                runs.append(CellRun(index, cell.source, "error", "DeadKernelError", str(exc)))
                break
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                evalue = _ANSI.sub("", errors[0].get("evalue", ""))
                runs.append(CellRun(index, cell.source, "error", errors[0].get("ename", ""), evalue))
            else:
                runs.append(CellRun(index, cell.source, "ok"))
    return runs


def _check_status(cell: CellRun) -> tuple[Status, str]:
    if cell.outcome == "ok":
        return Status.PASSED, ""
    if cell.outcome == "timeout":
        return Status.ERROR, f"the check cell ({cell.label}) ran past the cell timeout"
    if cell.ename in ("ExerciseNotAttempted", "NotImplementedError"):
        return Status.NOT_ATTEMPTED, cell.evalue
    if cell.ename == "CheckFailed":
        return Status.FAILED, cell.evalue
    return Status.ERROR, f"{cell.label}: {cell.ename}: {cell.evalue}"


def grade_cells(path: str | os.PathLike, runs: list[CellRun], *, timeout: float) -> NotebookReport:
    """The report of a notebook from its cells' outcomes (see the module's docstring)."""
    from tfmcourse.checks import EXERCISES

    report = NotebookReport(str(path), lesson=notebook.lesson_of(path))
    checks: dict[str, CellRun] = {}
    for cell in runs:
        for name in notebook.check_calls(cell.source):
            if name in EXERCISES:
                checks.setdefault(name, cell)
    stop = next(
        (c for c in runs if c.outcome == "timeout" or (c.outcome == "error" and c not in checks.values())),
        None,
    )
    if stop is not None:
        what = f"ran past the cell timeout of {timeout:g} s" if stop.outcome == "timeout" else "raised"
        detail = "" if stop.outcome == "timeout" else f" {stop.ename}: {stop.evalue}"[:600]
        report.error = f"the notebook does not run top to bottom: {stop.label} {what}{detail}"
    sources = [c.source for c in runs]
    for name in notebook.graded_exercises(path, sources):
        ex = EXERCISES[name]
        cell = checks.get(name)
        if cell is None:
            status, msg = Status.NOT_ATTEMPTED, f"the notebook has no check cell `check_{name}({name})`"
            if stop is not None and stop.outcome == "timeout":
                status, msg = Status.ERROR, f"its check did not run: {stop.label} ran past the cell timeout"
        else:
            status, msg = _check_status(cell)
            if stop is not None and cell.index > stop.index:  # Restart & Run All never gets here
                own = f"{msg} " if msg else ""
                status, msg = (
                    Status.ERROR,
                    f"{own}(its check comes after {stop.label}, where the notebook stops)",
                )
        report.exercises.append(ExerciseResult(name, ex.lesson, status, ex.points, ex.points, msg))
    return report


def grade_notebook(path: str | os.PathLike, *, timeout: float = DEFAULT_CELL_TIMEOUT) -> NotebookReport:
    """Run the notebook once and grade it. An unreadable file scores 0 of its lesson's points."""
    try:
        runs = run(path, timeout=timeout)
    except notebook.NotebookError as exc:
        return NotebookReport(str(path), lesson=notebook.lesson_of(path)).unreadable(str(exc))
    return grade_cells(path, runs, timeout=timeout)
