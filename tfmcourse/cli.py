"""The ``tfmcourse`` command: ``build``, ``grade``, ``export``, ``run``, ``lab``, ``progress``, ``translate``.

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


def _translate(args) -> int:
    from tfmcourse.build import find_root
    from tfmcourse.editions import start

    try:
        root = Path(args.root) if args.root else find_root()
        return start(root, [Path(p) for p in args.notebooks], lang=args.lang)
    except (ValueError, FileNotFoundError) as exc:
        print(f"tfmcourse translate: {exc}", file=sys.stderr)
        return 2


def _grade(args) -> int:
    if args.roster or args.lms_csv:
        return _grade_for_lms(args)
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
    hide = {str(f) for f in folders} | {
        str(Path(p).resolve().parent) for p in args.paths if Path(p).is_file()
    }
    try:
        mode, isolation_note = isolation.resolve(args.isolation, tuple(sorted(hide)))
    except isolation.IsolationUnavailable as exc:
        return fail(f"--isolation bwrap: {exc}")
    print(isolation_note, file=sys.stderr)
    from tfmcourse.grading.secure import privileges, sandbox

    run_as = args.run_as or os.environ.get("TFMCOURSE_RUN_AS") or "auto"
    try:
        user = privileges.plan(run_as)
    except privileges.RunAsUnavailable as exc:
        return fail(str(exc))
    problem = sandbox.python_problem(user)
    if problem is not None:
        return fail(problem)
    print(privileges.describe(user), file=sys.stderr)
    settings = Settings(
        seed=new_seed() if args.seed is None else args.seed,
        timeout=DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
        memory=DEFAULT_MEMORY if args.memory is None else args.memory,
        jobs=args.jobs or min(4, os.cpu_count() or 1),
        isolation=mode,
        hide=tuple(sorted(hide)),
        run_as=run_as,
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


def _grade_for_lms(args) -> int:
    """``grade --secure … --roster R --lms-csv F``: grade, then write the LMS gradebook from the JSON."""
    import json
    import tempfile

    from tfmcourse.export import lms
    from tfmcourse.export.bundle import write_json

    if not (args.secure and args.roster and args.lms_csv):
        print("tfmcourse grade: --roster and --lms-csv go together, with --secure", file=sys.stderr)
        return 2
    for folder in (Path(p).resolve() for p in args.paths if Path(p).is_dir()):
        if Path(args.lms_csv).resolve().is_relative_to(folder):
            print(
                f"tfmcourse grade: refusing to write {args.lms_csv} inside the graded folder", file=sys.stderr
            )
            return 2
    try:
        roster = lms.read_roster(args.roster)  # a bad roster fails before a long grading run
        names = lms.parse_columns(args.lms_column or [])
    except (lms.RosterError, ValueError) as exc:
        print(f"tfmcourse grade: {exc}", file=sys.stderr)
        return 2
    if any(Path(p).is_dir() for p in args.paths) and not args.csv and not args.json:
        args.csv, args.json = "gradebook.csv", "gradebook.json"  # what grading a folder writes anyway
    with tempfile.TemporaryDirectory() as tmp:
        kept = args.json
        args.json = kept or str(Path(tmp) / "report.json")
        status = _grade_secure(args)
        try:
            report = json.loads(Path(args.json).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            print("tfmcourse grade: no grading report, so no LMS gradebook was written", file=sys.stderr)
            return status or 2
        result = lms.write(report, roster, args.lms_csv, args.lms_format, names)
        sys.stderr.write(lms.summary(result, args.lms_csv))
        if kept:
            report["lms"] = {"file": args.lms_csv, "format": args.lms_format, **result.to_dict()}
            write_json(report, kept)
    # 1: graded, but the LMS file leaves out submissions that match no single roster row.
    return status or (1 if result.unmatched else 0)


def _export(args) -> int:
    from tfmcourse.build import find_root
    from tfmcourse.export import gradescope, prairielearn
    from tfmcourse.export.bundle import ExportError

    try:
        root = Path(args.root) if args.root else find_root()
        if args.platform == "gradescope":
            out = gradescope.build(
                root,
                args.lesson,
                args.out,
                timeout=args.timeout,
                memory=args.memory,
                seed=args.seed,
                wheelhouse=args.wheelhouse,
            )
            print(f"Gradescope autograder written to {out} (upload it as the assignment's autograder)")
        else:
            if len(args.lesson) != 1:
                raise ExportError("a PrairieLearn question grades one lesson: give exactly one --lesson")
            out = prairielearn.build(
                root,
                args.lesson[0],
                args.out,
                image=args.image,
                timeout=args.timeout,
                memory=args.memory,
                seed=args.seed,
            )
            print(
                f"PrairieLearn question written to {out}; build its grading image with\n"
                f"  docker build -t {args.image} {out / 'tests'}"
            )
    except (ExportError, FileNotFoundError) as exc:
        print(f"tfmcourse export: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args) -> int:
    from tfmcourse import nbtools

    for path in args.notebooks:
        print(f"running {path} …", flush=True)
        nbtools.execute(path, timeout=args.timeout)
    return 0


def _lab(args) -> int:
    import os
    import shutil

    from tfmcourse.build import find_root
    from tfmcourse.workspace import WorkspaceError, first_lesson, lab_command, sync_for_lab, workspace_dir

    try:
        course = find_root()
        reports = sync_for_lab(course, lang=args.lang)
    except (WorkspaceError, FileNotFoundError) as exc:
        print(f"tfmcourse lab: {exc}", file=sys.stderr)
        return 2
    for report in reports:
        print(report.summary(), flush=True)
    if args.sync_only:
        return 0
    extra = args.lab_args[1:] if args.lab_args[:1] == ["--"] else args.lab_args
    jupyter = Path(sys.executable).parent / "jupyter"
    root = workspace_dir(course, "en")  # holds every edition, so links between editions work
    cmd = lab_command(
        jupyter if jupyter.exists() else shutil.which("jupyter") or "jupyter",
        root,
        extra,
        first_lesson(args.lang),
    )
    print("starting JupyterLab in", root, "(stop it with Ctrl+C)", flush=True)
    os.chdir(root)
    os.execvp(cmd[0], cmd)


def _progress(args) -> int:
    from tfmcourse import progress
    from tfmcourse.workspace import find_workspace

    def other_edition(work):  # --lang ko asks for the Korean workspace, not the English one around it
        return args.lang and not args.workspace and progress.workspace_language(work) != args.lang

    workspace = find_workspace(Path(args.workspace) if args.workspace else None)
    if other_edition(workspace):
        workspace = None
    if workspace is None and not args.workspace:
        from tfmcourse.build import find_root
        from tfmcourse.workspace import WorkspaceError, workspace_dir

        try:
            workspace = find_workspace(workspace_dir(find_root(), args.lang or "en"))
        except (FileNotFoundError, WorkspaceError):
            workspace = None
        if other_edition(workspace):
            workspace = None
    print(progress.render(workspace, args.lang))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfmcourse", description="The Transformer course's tools.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="generate exercises/ from solutions/, and ko/ from po/ko/")
    b.add_argument(
        "--check",
        action="store_true",
        help="only report; exit 1 when exercises/ or a translation is out of date",
    )
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
        "--run-as",
        metavar="USER",
        default=None,
        help="--secure, grader running as root: the account learner code runs as "
        "(default, or TFMCOURSE_RUN_AS: a user of its own per exercise)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="--secure: seed of the hidden inputs (default: a fresh random seed each run)",
    )
    g.add_argument(
        "--roster", metavar="CSV", help="--secure: the LMS roster (e.g. Canvas's gradebook export)"
    )
    g.add_argument(
        "--lms-csv", metavar="FILE", help="--secure, with --roster: write a gradebook the LMS imports"
    )
    g.add_argument(
        "--lms-format",
        choices=("canvas", "moodle"),
        default="canvas",
        help="the --lms-csv flavour (default canvas)",
    )
    g.add_argument(
        "--lms-column",
        action="append",
        metavar="LESSON=NAME",
        help="name a lesson's LMS column after an existing assignment, e.g. 6='Lesson 6 (12345)' (repeatable)",
    )
    g.set_defaults(func=_grade)

    t = sub.add_parser(
        "translate",
        help="(translators) start or update the catalogue of English notebooks; `build` writes the edition",
    )
    t.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="notebooks/… or exercises/… notebooks")
    t.add_argument("--lang", default="ko", help="the edition's language (default: ko)")
    t.add_argument("--root", help="the course folder (default: found from the current directory)")
    t.set_defaults(func=_translate)

    x = sub.add_parser("export", help="(instructors) an autograder for Gradescope or PrairieLearn")
    x.add_argument("platform", choices=("gradescope", "prairielearn"))
    x.add_argument(
        "--lesson", type=int, action="append", required=True, help="a lesson to grade (repeatable)"
    )
    x.add_argument("--out", required=True, help="the zip (gradescope) or question folder (prairielearn)")
    x.add_argument("--timeout", type=float, default=None, help="seconds per exercise (grader's default: 20)")
    x.add_argument("--memory", type=int, default=None, help="MiB per exercise (grader's default: 2048)")
    x.add_argument(
        "--seed", type=int, default=None, help="fixed hidden seed (default: a fresh one per submission)"
    )
    x.add_argument("--wheelhouse", help="gradescope: bundle these .whl files so setup.sh installs offline")
    x.add_argument(
        "--image", default="tfmcourse-grader:latest", help="prairielearn: the grading image's name"
    )
    x.add_argument("--root", help="the course folder (default: found from the current directory)")
    x.set_defaults(func=_export)

    r = sub.add_parser("run", help="(authors) run notebooks top to bottom and save them with clean metadata")
    r.add_argument("notebooks", nargs="+")
    r.add_argument("--timeout", type=int, default=600)
    r.set_defaults(func=_run)

    lab = sub.add_parser(
        "lab", help="copy the course into work/ (never overwriting your files) and open JupyterLab"
    )
    lab.add_argument("--lang", default="en", help="course edition: en (default) or ko when it is built")
    lab.add_argument("--sync-only", action="store_true", help="only create or refresh work/")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="options passed on to jupyter lab (after --)")
    lab.set_defaults(func=_lab)

    pr = sub.add_parser(
        "progress", help="show, per lesson and exercise, what passes, fails or is not attempted"
    )
    pr.add_argument("--workspace", help="the workspace folder (default: the one you are in, else work/)")
    pr.add_argument(
        "--lang",
        choices=("en", "ko"),
        help="the language of the table, and of the workspace to read (default: the workspace's own)",
    )
    pr.set_defaults(func=_progress)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # file names need not be valid UTF-8: print them escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
