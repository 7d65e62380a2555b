"""The ``tfmcourse`` command: ``build``, ``grade``, ``run``, ``lab``, ``progress``."""

from __future__ import annotations

import argparse
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
    if args.secure:
        from tfmcourse.grading import secure

        return secure.main(args)
    from tfmcourse.grading import nbgrade

    return nbgrade.main(args)


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
    from tfmcourse.workspace import WorkspaceError, lab_command, sync

    try:
        report = sync(find_root(), lang=args.lang)
    except (WorkspaceError, FileNotFoundError) as exc:
        print(f"tfmcourse lab: {exc}", file=sys.stderr)
        return 2
    print(report.summary(), flush=True)
    if args.sync_only:
        return 0
    extra = args.lab_args[1:] if args.lab_args[:1] == ["--"] else args.lab_args
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = lab_command(
        jupyter if jupyter.exists() else shutil.which("jupyter") or "jupyter", report.workspace, extra
    )
    print("starting JupyterLab in", report.workspace, "(stop it with Ctrl+C)", flush=True)
    os.chdir(report.workspace)
    os.execvp(cmd[0], cmd)


def _progress(args) -> int:
    from tfmcourse import progress
    from tfmcourse.workspace import find_workspace

    workspace = find_workspace(Path(args.workspace) if args.workspace else None)
    if workspace is None and not args.workspace:
        from tfmcourse.build import find_root

        try:
            workspace = find_workspace(find_root() / "work")
        except FileNotFoundError:
            workspace = None
    print(progress.render(workspace))
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
    g.add_argument("--jobs", type=int, default=None, help="--secure: submissions graded in parallel")
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
    pr.set_defaults(func=_progress)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
