"""The ``tfmcourse`` command: ``build``, ``grade``, ``run``.

Each subcommand is a ``_name(args) -> exit status`` function registered in
:func:`parser`; argparse stays here, the library gets plain values.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _build(args) -> int:
    from tfmcourse.build import BuildError, build, find_root

    try:
        root = Path(args.root) if args.root else find_root()
        return build(root, check=args.check, force=args.force)
    except (BuildError, FileNotFoundError) as exc:
        print(f"tfmcourse build: {exc}", file=sys.stderr)
        return 2


def _grade(args) -> int:
    return _grade_secure(args) if args.secure else _grade_plain(args)


def _grade_plain(args) -> int:
    """Run each notebook top to bottom in a fresh kernel; exit 2 if one could not be graded or run."""
    from tfmcourse.grading import kernel
    from tfmcourse.grading.report import render_table, write_json

    folders = [p for p in args.paths if Path(p).is_dir()]
    if folders:
        print(
            f"tfmcourse grade: {folders[0]} is a folder; grading a class folder needs --secure "
            "(tfmcourse grade --secure FOLDER)",
            file=sys.stderr,
        )
        return 2
    timeout = args.timeout or kernel.DEFAULT_CELL_TIMEOUT
    reports = [kernel.grade_notebook(p, timeout=timeout) for p in args.paths]
    print(render_table(reports), end="")
    if args.json:
        write_json(args.json, [r.to_dict() for r in reports])
    return 2 if any(r.error for r in reports) else 0


def _grade_secure(args) -> int:
    """Grade notebooks or class folders out of process; exit 2 if nothing (or a named file) could be graded."""
    from tfmcourse.grading import gradebook
    from tfmcourse.grading.report import NotebookReport, render_table, write_json
    from tfmcourse.grading.secure import Settings, grade_many, isolation, new_seed
    from tfmcourse.grading.secure.sandbox import DEFAULT_MEMORY, DEFAULT_TIMEOUT

    def fail(message: str) -> int:
        print(f"tfmcourse grade --secure: {message}", file=sys.stderr)
        return 2

    try:
        submissions = gradebook.collect(args.paths)
    except FileNotFoundError as exc:
        return fail(str(exc))
    if not submissions:
        return fail("nothing to grade")
    folders = [Path(p).resolve() for p in args.paths if Path(p).is_dir()]
    csv_path, json_path = args.csv, args.json
    if folders and not csv_path and not json_path:
        csv_path, json_path = "gradebook.csv", "gradebook.json"
    for out in (csv_path, json_path):
        if out and any(Path(out).resolve().is_relative_to(f) for f in folders):
            return fail(f"refusing to write {out} inside the graded folder (nothing in it is ever modified)")
    try:
        mode, isolation_note = isolation.resolve(args.isolation)
    except isolation.IsolationUnavailable as exc:
        return fail(f"--isolation bwrap: {exc}")
    print(isolation_note, file=sys.stderr)
    hide = {str(f) for f in folders} | {
        str(Path(p).resolve().parent) for p in args.paths if Path(p).is_file()
    }
    settings = Settings(
        seed=new_seed() if args.seed is None else args.seed,
        timeout=DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
        memory=DEFAULT_MEMORY if args.memory is None else args.memory,
        jobs=args.jobs or min(4, os.cpu_count() or 1),
        isolation=mode,
        hide=tuple(sorted(hide)),
    )
    gradeable = [(s.path, s.display) for s in submissions if s.problem is None]
    reports = dict(zip((d for _, d in gradeable), grade_many(gradeable, settings)))
    for s in submissions:
        if s.problem is not None:
            reports[s.display] = NotebookReport(path=s.display, error=s.problem)
    graded = [(s.student, reports[s.display]) for s in submissions]
    lessons = gradebook.assignment(graded, args.lesson)
    if folders and not args.lesson:
        print(
            f"no --lesson given: grading lessons {', '.join(map(str, lessons))} (every lesson someone "
            "handed in); pass --lesson N for each lesson of the assignment to fix its maximum",
            file=sys.stderr,
        )
    if not folders or len(graded) <= 8:
        sys.stdout.write(render_table([r for _, r in graded]))
    else:
        sys.stdout.write(gradebook.render_summary(graded, lessons))
    print(
        f"(secure mode: hidden seed {settings.seed}; limits {settings.timeout:g} s and {settings.memory} MiB "
        f"per exercise; {isolation_note})"
    )
    if json_path:
        notebooks = [{"student": s, **r.to_dict()} for s, r in graded]
        assignment = {"lessons": lessons, "max_points": gradebook.maxima(lessons)}
        write_json(json_path, notebooks, secure=settings.to_dict(), assignment=assignment)
        print(f"details written to {json_path}")
    if csv_path:
        gradebook.write_csv(graded, csv_path, lessons)
        print(f"gradebook written to {csv_path}")
    named = {str(Path(p)) for p in args.paths if Path(p).is_file()}
    if all(r.error for _, r in graded) or any(r.error and r.path in named for _, r in graded):
        return 2
    return 0


def _run(args) -> int:
    from tfmcourse import nbtools

    for path in args.notebooks:
        print(f"running {path} …", flush=True)
        nbtools.execute(path, timeout=args.timeout)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfmcourse", description="The Transformer course's tools.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="generate exercises/ from solutions/")
    b.add_argument("--check", action="store_true", help="only report; exit 1 when exercises/ is out of date")
    b.add_argument(
        "--force",
        action="store_true",
        help="also regenerate exercise notebooks that were edited (a .bak.ipynb copy is kept)",
    )
    b.add_argument("--root", help="the course folder (default: found from the current directory)")
    b.set_defaults(func=_build)

    g = sub.add_parser("grade", help="grade notebooks and print a per-exercise table")
    g.add_argument(
        "paths",
        nargs="+",
        metavar="NOTEBOOK",
        help="notebooks to grade (with --secure, also folders of submissions/<student>/*.ipynb)",
    )
    g.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed per cell (default 600) or, with --secure, per exercise (default 20)",
    )
    g.add_argument(
        "--secure",
        action="store_true",
        help="grade out of process against hidden randomised inputs (see the instructor guide)",
    )
    g.add_argument("--csv", metavar="FILE", help="--secure: write a gradebook, one row per student")
    g.add_argument(
        "--lesson",
        type=int,
        action="append",
        metavar="N",
        help="--secure: a lesson of the assignment (repeat for several); fixes every student's maximum",
    )
    g.add_argument("--jobs", type=int, default=None, help="--secure: submissions graded in parallel")
    g.add_argument(
        "--isolation",
        choices=("auto", "bwrap", "none"),
        default="auto",
        help="--secure: run learner code inside bubblewrap (auto: when it works; bwrap: refuse otherwise)",
    )
    g.add_argument("--memory", type=int, default=None, help="--secure: memory limit per exercise, in MiB")
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="--secure: seed of the hidden inputs (default: a fresh random seed each run)",
    )
    g.set_defaults(func=_grade)

    r = sub.add_parser("run", help="(authors) run notebooks top to bottom and save them with clean metadata")
    r.add_argument("notebooks", nargs="+")
    r.add_argument("--timeout", type=int, default=600)
    r.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # file names need not be valid UTF-8: print them escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
