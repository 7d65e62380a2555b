"""``tfmcourse grade --secure``: grade learner code out of process, on hidden inputs.

What happens to a notebook (see ``docs/instructors.md`` for the threat model):

1. The trusted parent reads the notebook as JSON and keeps, with :mod:`ast`,
   only imports, definitions (``def``/``class``, and simple
   ``NAME = literal | NAME | lambda``); every other top-level statement
   (``torch.allclose = ...``, prints, training loops, check calls) is dropped
   (:mod:`tfmcourse.grading.extract`).
2. Per exercise it keeps only what that exercise needs (the definition and,
   transitively, the notebook definitions it refers to, plus the imports) and
   rejects, before running anything, the use of the course's reference code
   (anything imported from ``tfmcourse``) and of the torch built-in the
   exercise asks the learner to write (:data:`~tfmcourse.grading.extract.FORBIDDEN`).
3. The code runs in a worker process forked from a clean ``python -I -S``
   interpreter (:mod:`tfmcourse.grading._child`) that cannot import
   ``tfmcourse``, with its own session, temporary directory and limits
   (address space, CPU seconds, file size) and a wall-clock deadline after
   which its process group is killed. Import hooks and traps on the forbidden
   built-ins report their use at run time too (:mod:`tfmcourse.grading.sandbox`).
4. The parent runs the registered check, ``EXERCISES[name].check(proxy,
   seed=<hidden seed>)``. ``proxy`` forwards every call to the worker through
   a pipe carrying JSON and raw tensor bytes (never pickle); results come back
   as plain ``torch.Tensor`` data, so monkeypatching, tensor subclasses or a
   replaced check in the notebook have no effect on the comparison.

This module does steps 1-4 for each exercise of a notebook (:func:`grade_exercise`,
:func:`grade_notebook`), for a class in parallel (:func:`grade_many`), and is the
command line (:func:`main`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import sys
from pathlib import Path

import torch

from tfmcourse.grading import _child
from tfmcourse.grading.extract import (
    Extracted,
    NotebookError,
    closure,
    course_bindings,
    extract,
    read_cells,
    static_violations,
)
from tfmcourse.grading.report import ExerciseResult, NotebookReport
from tfmcourse.grading.sandbox import (
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT,
    GradingAborted,
    RemoteObject,
    Sandbox,
    shared_sandbox,
)

# ============================================================================ grading


def exercises_for(path: str | os.PathLike, ex: Extracted) -> list[str]:
    """Exercises a notebook is graded on: its lesson (from ``NN_name.ipynb``) and its check calls."""
    from tfmcourse.checks import EXERCISES

    names = {n for n in ex.check_calls if n in EXERCISES}
    m = re.match(r"(\d+)_", Path(path).name)
    if m:
        names |= {n for n, e in EXERCISES.items() if e.lesson == int(m.group(1))}
    return [n for n in EXERCISES if n in names]


def new_seed() -> int:
    """A hidden seed, never 0 (the seed the notebooks show)."""
    return secrets.randbelow(2**31 - 2) + 1


def _result(name: str, status: str, message: str = "", reason: str = "") -> ExerciseResult:
    from tfmcourse.checks import EXERCISES

    e = EXERCISES[name]
    return ExerciseResult(
        name, e.lesson, status, e.points if status == "passed" else 0, e.points, message, reason
    )


def grade_exercise(
    sandbox: Sandbox, ex: Extracted, name: str, *, seed: int, timeout: float = DEFAULT_TIMEOUT
) -> ExerciseResult:
    from tfmcourse.checks import EXERCISES, CheckFailed, ExerciseNotAttempted

    if name not in ex.defs:
        if name in ex.course_names:
            why = (
                f"imports {ex.course_names[name]} from the course package tfmcourse (its reference "
                "implementation) instead of writing it"
            )
            return _result(name, "failed", f"{name}: {why}", "rejected before running: " + why)
        for cell, err, names in ex.broken:
            if name in names:
                return _result(
                    name,
                    "failed",
                    f"{name}: cell {cell + 1} does not parse: {err}",
                    "syntax error in the cell that defines it",
                )
        return _result(
            name,
            "not attempted",
            f"{name}: no definition found in the notebook",
            "not defined in the notebook",
        )
    units = closure(ex, name)
    problems = static_violations(ex, name, units)
    if problems:
        return _result(
            name,
            "failed",
            f"{name}: " + "; ".join(problems),
            "rejected before running: " + "; ".join(problems),
        )
    session = None
    try:
        try:
            session = sandbox.open(
                name, units, ex.imports, timeout, ex.cells, course_bindings(ex, name, units)
            )
        except (OSError, RuntimeError, TimeoutError, EOFError, _child.ProtocolError) as exc:
            sandbox.stop()
            return _result(
                name,
                "error",
                f"{name}: the grading sandbox could not start ({exc})",
                "grading sandbox unavailable",
            )
        ready, _ = session.recv()  # the worker's answer to the set-up
        op = ready.get("op")
        if op == "exited":
            raise session._died(ready)
        if op == "forbidden":
            raise GradingAborted(f"{ready.get('what')} — not allowed in this exercise")
        if op == "missing":
            notes = "; ".join(ready.get("notes") or [])[:1500]
            return _result(
                name, "failed", f"{name}: defining it failed: {notes}", "its definition raised an error"
            )
        if op != "ready":
            raise GradingAborted(f"the learner's process answered {op!r}")
        proxy = RemoteObject(session, 0, name)
        with contextlib.redirect_stdout(io.StringIO()):
            EXERCISES[name].check(proxy, seed=seed)
        return _result(name, "passed", "", "passed the check on hidden inputs, out of process")
    except ExerciseNotAttempted as exc:
        return _result(name, "not attempted", str(exc), "still raises NotImplementedError")
    except CheckFailed as exc:
        return _result(name, "failed", str(exc), "failed the check on hidden inputs")
    except GradingAborted as exc:
        return _result(name, exc.status, exc.message or f"{name}: {exc.reason}", exc.reason)
    except Exception as exc:
        return _result(
            name,
            "error",
            f"{name}: the check could not use the result: {type(exc).__name__}: {str(exc)[:300]}",
            "the check raised an unexpected error on the returned value",
        )
    finally:
        if session is not None:
            session.close()


def grade_notebook(
    path: str | os.PathLike,
    *,
    seed: int | None = None,
    timeout: float | None = None,
    memory: int | None = None,
    display_path: str | None = None,
) -> NotebookReport:
    """Grade one notebook securely. The notebook file is only read."""
    seed = new_seed() if seed is None else int(seed)
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    memory = DEFAULT_MEMORY if memory is None else int(memory)
    report = NotebookReport(path=display_path or str(path))
    try:
        ex = extract(read_cells(path))
    except NotebookError as exc:
        report.error = str(exc)
        return report
    names = exercises_for(path, ex)
    if not names:
        report.error = (
            "no graded exercise found (name the notebook like the course's NN_name.ipynb, "
            "and keep its check_<name>(<name>) cells)"
        )
        return report
    sandbox = shared_sandbox(memory)
    for name in names:
        report.exercises.append(grade_exercise(sandbox, ex, name, seed=seed, timeout=timeout))
    return report


def _grade_job(job: tuple) -> dict:
    """Worker-process entry point: plain arguments in, a plain dict out."""
    path, display, seed, timeout, memory = job
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            report = grade_notebook(path, seed=seed, timeout=timeout, memory=memory, display_path=display)
    except Exception as exc:
        report = NotebookReport(path=display, error=f"grading failed: {type(exc).__name__}: {exc}")
    return report.to_dict()


def report_from_dict(d: dict) -> NotebookReport:
    return NotebookReport(
        path=d["path"], error=d.get("error"), exercises=[ExerciseResult(**e) for e in d.get("exercises", [])]
    )


def grade_many(
    jobs: list[tuple[str, str]],
    *,
    seed: int,
    timeout: float,
    memory: int,
    n_jobs: int = 1,
    progress: bool = True,
) -> list[NotebookReport]:
    """Grade ``[(path, display_path), …]`` with ``n_jobs`` processes; results in the input order."""
    from tqdm.auto import tqdm

    work = [(p, d, seed, timeout, memory) for p, d in jobs]
    results: list[dict | None] = [None] * len(work)
    bar = tqdm(total=len(work), desc="grading", unit="notebook", disable=not progress, file=sys.stderr)
    try:
        if n_jobs <= 1 or len(work) <= 1:
            for i, w in enumerate(work):
                results[i] = _grade_job(w)
                bar.update()
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            with cf.ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_grade_job, w): i for i, w in enumerate(work)}
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:
                        results[i] = NotebookReport(path=work[i][1], error=f"grading failed: {exc}").to_dict()
                    bar.update()
    finally:
        bar.close()
    return [report_from_dict(r) for r in results]


# ============================================================================ command line


def main(args) -> int:
    from tfmcourse.grading import gradebook
    from tfmcourse.grading.report import render_table

    try:
        submissions = gradebook.collect(args.paths)
    except FileNotFoundError as exc:
        print(f"tfmcourse grade --secure: {exc}", file=sys.stderr)
        return 2
    if not submissions:
        print("tfmcourse grade --secure: nothing to grade", file=sys.stderr)
        return 2
    folders = [Path(p).resolve() for p in args.paths if Path(p).is_dir()]
    csv_path, json_path = getattr(args, "csv", None), getattr(args, "json", None)
    if folders and not csv_path and not json_path:
        csv_path, json_path = "gradebook.csv", "gradebook.json"
    for out in (csv_path, json_path):
        if out and any(Path(out).resolve().is_relative_to(f) for f in folders):
            print(
                f"tfmcourse grade --secure: refusing to write {out} inside the graded folder "
                "(nothing in it is ever modified)",
                file=sys.stderr,
            )
            return 2
    seed = new_seed() if getattr(args, "seed", None) is None else int(args.seed)
    timeout = DEFAULT_TIMEOUT if getattr(args, "timeout", None) is None else float(args.timeout)
    memory = DEFAULT_MEMORY if getattr(args, "memory", None) is None else int(args.memory)
    n_jobs = getattr(args, "jobs", None) or min(4, os.cpu_count() or 1)
    gradeable = [(s.path, s.display) for s in submissions if s.problem is None]
    reports = dict(
        zip(
            (d for _, d in gradeable),
            grade_many(gradeable, seed=seed, timeout=timeout, memory=memory, n_jobs=n_jobs),
        )
    )
    for s in submissions:
        if s.problem is not None:
            reports[s.display] = NotebookReport(path=s.display, error=s.problem)
    ordered = [(s.student, reports[s.display]) for s in submissions]
    if not folders or len(ordered) <= 8:
        sys.stdout.write(render_table([r for _, r in ordered]))
    else:
        sys.stdout.write(gradebook.render_summary(ordered))
    print(f"(secure mode: hidden seed {seed}; limits {timeout:g} s and {memory} MiB per exercise)")
    if json_path:
        gradebook.write_json(ordered, json_path, seed=seed, timeout=timeout, memory=memory)
        print(f"details written to {json_path}")
    if csv_path:
        gradebook.write_csv(ordered, csv_path)
        print(f"gradebook written to {csv_path}")
    named = {str(Path(p)) for p in args.paths if Path(p).is_file()}
    if all(r.error for _, r in ordered) or any(r.error and r.path in named for _, r in ordered):
        return 2
    return 0
