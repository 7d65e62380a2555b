"""Secure grading of notebooks and of a class: the trusted orchestration.

Per notebook: read it (:mod:`tfmcourse.grading.notebook`), keep each
exercise's definitions (:mod:`.extract`), refuse what the policy forbids
before anything runs (:mod:`.policy`), then run the registered check in this
process against a proxy for the learner's code, which runs in the sandbox
(:mod:`.sandbox`), on inputs drawn from a hidden seed. A class is graded with
a pool of processes; each returns a plain dict, never learner data.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import sys
from dataclasses import dataclass, field

import torch

from tfmcourse.grading import notebook
from tfmcourse.grading.report import ExerciseResult, NotebookReport, Status
from tfmcourse.grading.secure import extract, policy, privileges
from tfmcourse.grading.secure.proxy import RemoteObject
from tfmcourse.grading.secure.sandbox import DEFAULT_MEMORY, DEFAULT_TIMEOUT, shared_sandbox
from tfmcourse.grading.secure.session import GradingAborted


def private_process() -> None:
    """Make this grading process non-dumpable (Linux): learner code, running as the same user, can
    then no longer open its ``/proc/<pid>/fd`` (the pool's result pipes), ``mem`` or ``environ``."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass  # not Linux: nothing to do


def hide_seed(text: str, seed: int) -> str:
    """``text`` without the hidden seed (a check's message may quote the seed it was given)."""
    if seed < 1000:  # a short number would also match unrelated digits; hidden seeds are long
        return text
    return re.sub(rf"(?<!\d){seed}(?!\d)", "<hidden seed>", text)


def new_seed() -> int:
    """A hidden seed, never 0 (the seed the notebooks show)."""
    return secrets.randbelow(2**31 - 2) + 1


@dataclass(frozen=True)
class Settings:
    """How a secure grading run grades: the one configuration handed down."""

    seed: int = field(default_factory=new_seed)
    timeout: float = DEFAULT_TIMEOUT  # seconds per exercise
    memory: int = DEFAULT_MEMORY  # MiB per exercise
    jobs: int = 1  # notebooks graded in parallel
    isolation: str = "none"  # "bwrap": learner code inside bubblewrap (see isolation.py)
    hide: tuple[str, ...] = ()  # folders learner code must not see (the class being graded)
    run_as: str = "auto"  # as root: "auto" (a user of its own per worker) or an account (privileges.py)

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "timeout": self.timeout,
            "memory": self.memory,
            "isolation": self.isolation,
            "learner_user": privileges.describe(privileges.plan(self.run_as)),
        }


def _result(name: str, status: Status, message: str = "", reason: str = "") -> ExerciseResult:
    from tfmcourse.checks import EXERCISES

    e = EXERCISES[name]
    return ExerciseResult(name, e.lesson, status, e.points, e.points, message, reason)


def _before_running(ex: extract.Extracted, name: str) -> ExerciseResult | None:
    """The verdict when the exercise cannot or must not run at all."""
    if name not in ex.defs:
        if name in ex.course_names:
            why = (
                f"imports {ex.course_names[name]} from the course package tfmcourse (its reference "
                "implementation) instead of writing it"
            )
            return _result(name, Status.FAILED, f"{name}: {why}", "rejected before running: " + why)
        for cell, err, names in ex.broken:
            if name in names:
                msg = f"{name}: cell {cell + 1} does not parse: {err}"
                return _result(name, Status.FAILED, msg, "syntax error in the cell that defines it")
        msg = f"{name}: no definition found in the notebook"
        return _result(name, Status.NOT_ATTEMPTED, msg, "not defined in the notebook")
    problems = policy.static_violations(ex, name, extract.closure(ex, name))
    if problems:
        why = "; ".join(problems)
        return _result(name, Status.FAILED, f"{name}: {why}", "rejected before running: " + why)
    return None


def _code(ex: extract.Extracted, name: str) -> dict:
    """What the worker is sent for one exercise: the kept code and the policy it runs under."""
    import tfmcourse

    units = extract.closure(ex, name)
    kept = sorted(ex.imports + units, key=lambda u: u.order)
    return {
        "chunks": [[f"<cell {u.cell + 1}>", u.source] for u in kept],
        "lines": {f"<cell {c + 1}>": ex.cells.get(c, "") for c in {u.cell for u in kept}},
        "bind": policy.course_bindings(ex, name, units),
        "prune": policy.course_policy(name)[1],
        "course_root": os.path.dirname(os.path.dirname(os.path.abspath(tfmcourse.__file__))),
        "forbidden": [f.wire() for f in policy.forbidden_for(name)],
        "forbidden_ops": dict(zip(("ops", "why"), policy.FORBIDDEN_OPS.get(name, ((), "")))),
    }


def grade_exercise(ex: extract.Extracted, name: str, settings: Settings) -> ExerciseResult:
    """Grade exercise ``name`` of an extracted notebook: its check runs here, its code in the sandbox."""
    from tfmcourse.checks import EXERCISES, CheckFailed, ExerciseNotAttempted

    early = _before_running(ex, name)
    if early is not None:
        return early
    code = _code(ex, name)
    sandbox = shared_sandbox(
        settings.memory, settings.isolation, settings.hide, course=bool(code["bind"]), run_as=settings.run_as
    )
    session = None
    try:
        try:
            session = sandbox.open(name, code, settings.timeout)
        except (OSError, RuntimeError, TimeoutError, EOFError, ValueError) as exc:
            sandbox.stop()
            msg = f"{name}: the grading sandbox could not start ({exc})"
            return _result(name, Status.ERROR, msg, "grading sandbox unavailable")
        failed = session.ready()
        if failed is not None:
            msg = f"{name}: defining it failed: {failed}"
            return _result(name, Status.FAILED, msg, "its definition raised an error")
        proxy = RemoteObject(session, 0, name)  # handle 0: the exercise itself
        with contextlib.redirect_stdout(io.StringIO()):
            EXERCISES[name].check(proxy, seed=settings.seed)
        return _result(name, Status.PASSED, "", "passed the check on hidden inputs, out of process")
    except ExerciseNotAttempted as exc:
        return _result(name, Status.NOT_ATTEMPTED, str(exc), "still raises NotImplementedError")
    except CheckFailed as exc:
        return _result(name, Status.FAILED, str(exc), "failed the check on hidden inputs")
    except GradingAborted as exc:
        return _result(name, Status(exc.status), exc.message or f"{name}: {exc.reason}", exc.reason)
    except Exception as exc:
        msg = f"{name}: the check could not use the result: {type(exc).__name__}: {str(exc)[:300]}"
        return _result(name, Status.ERROR, msg, "the check raised an unexpected error on the returned value")
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
    settings = Settings(
        seed=new_seed() if seed is None else int(seed),
        timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
        memory=DEFAULT_MEMORY if memory is None else int(memory),
    )
    return grade_path(str(path), display_path or str(path), settings)


def grade_path(path: str, display: str, settings: Settings) -> NotebookReport:
    report = NotebookReport(path=display, lesson=notebook.lesson_of(path))
    try:
        nb = notebook.read(path)
    except notebook.NotebookError as exc:
        return report.unreadable(str(exc))
    sources = notebook.code_cells(nb)
    names = notebook.graded_exercises(path, sources)
    if not names:
        report.error = (
            "no graded exercise found (name the notebook like the course's NN_name.ipynb, "
            "and keep its check_<name>(<name>) cells)"
        )
        return report
    ex = extract.extract(sources)
    private_process()
    from tfmcourse.checks import language, notebook_language

    with language(notebook_language(nb, path)):  # check messages in the learner's edition
        for name in names:
            result = grade_exercise(ex, name, settings)
            result.message, result.reason = (
                hide_seed(t, settings.seed) for t in (result.message, result.reason)
            )
            report.exercises.append(result)
    return report


def _grade_job(job: tuple[str, str, Settings]) -> dict:
    """Pool entry point: plain arguments in, a plain dict out."""
    path, display, settings = job
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return grade_path(path, display, settings).to_dict()
    except Exception as exc:
        return NotebookReport(path=display, error=f"grading failed: {type(exc).__name__}: {exc}").to_dict()


def grade_many(
    jobs: list[tuple[str, str]], settings: Settings, *, progress: bool = True
) -> list[NotebookReport]:
    """Grade ``[(path, display name), …]`` with ``settings.jobs`` processes; results in input order."""
    from tqdm.auto import tqdm

    private_process()  # this process holds the pool's pipes
    work = [(p, d, settings) for p, d in jobs]
    results: list[dict] = [{}] * len(work)
    bar = tqdm(total=len(work), desc="grading", unit="notebook", disable=not progress, file=sys.stderr)
    try:
        if settings.jobs <= 1 or len(work) <= 1:
            for i, w in enumerate(work):
                results[i] = _grade_job(w)
                bar.update()
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=settings.jobs, mp_context=ctx) as pool:
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
    return [NotebookReport.from_dict(r) for r in results]
