"""Isolation by the operating system: the learner's interpreter inside bubblewrap (``bwrap``).

With ``bwrap`` the interpreter that runs learner code has no network, a
read-only view of the file system in which the instructor's home, the course
folder, the graded folders and the current directory are empty, a private
``/tmp``, and only its own temporary folder writable; it dies with the grader.
The Python installation is mounted back read-only, and so is the course
package when an exercise builds on an earlier lesson's reference (only then).
Modes: ``none``; ``bwrap`` (refuse to grade when it cannot isolate);
``auto`` (``bwrap`` when it works, else ``none``, and say which).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

MODES = ("auto", "bwrap", "none")


class IsolationUnavailable(RuntimeError):
    """``--isolation bwrap`` was asked for and cannot be had (the message says why)."""


@functools.cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot isolate here, or None when it works."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        proc = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-net", "--dev", "/dev", "--proc", "/proc", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not run ({exc})"
    if proc.returncode != 0:
        hint = ""
        if "uid map" in proc.stderr or "Permission denied" in proc.stderr:
            hint = (
                " (user namespaces are restricted: on Ubuntu 24.04, "
                "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor profile for bwrap)"
            )
        return f"bwrap failed: {proc.stderr.strip()[:300]}{hint}"
    return None


def resolve(mode: str, hide: tuple[str, ...] = ()) -> tuple[str, str]:
    """(the mode to use, a sentence saying so) for ``--isolation mode``; ``hide`` as for grading."""
    if mode not in MODES:
        raise ValueError(f"--isolation must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        return "none", "isolation: none (learner code runs with your user's files and network)"
    problem = bwrap_problem() or interpreter_problem(tuple(hide))
    if problem is None:
        return (
            "bwrap",
            "isolation: bwrap (no network, no view of your files, the course or other submissions)",
        )
    if mode == "bwrap":
        raise IsolationUnavailable(f"cannot isolate learner code: {problem}")
    return "none", f"isolation: none, learner code NOT isolated ({problem})"


def interpreter_problem(hide: tuple[str, ...]) -> str | None:
    """Why this interpreter cannot start inside the sandbox grading would build, or None.

    Runs the same command prefix (with the course package visible, the widest case) and checks
    that the interpreter starts, finds torch and can load the worker with the neighbours it
    loads by path (its top level only: ``__main__`` is not run)."""
    import tfmcourse
    from tfmcourse.grading.secure import worker

    site = [p for p in (sysconfig.get_paths().get(k) for k in ("purelib", "platlib")) if p]
    probe = "import importlib.util, runpy, sys; sys.path += sys.argv[2:]; "
    probe += "assert importlib.util.find_spec('torch'), 'torch not found'; runpy.run_path(sys.argv[1])"
    with tempfile.TemporaryDirectory(prefix="tfmcourse-probe-") as tmp:
        prefix = bwrap_prefix(
            writable=Path(tmp),
            hide=hide,
            course=os.path.dirname(os.path.abspath(tfmcourse.__file__)),
            worker=os.path.dirname(worker.__file__),
        )
        cmd = [*prefix, sys.executable, "-I", "-S", "-c", probe, worker.__file__, *site]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the interpreter could not start inside bwrap ({exc})"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"the interpreter {sys.executable} could not start inside bwrap: {why[:300]}"
    return None


def _existing(paths) -> list[str]:
    """The folders among ``paths`` (by their real location), each once."""
    out = []
    for p in paths:
        if p and os.path.isdir(p):
            real = os.path.realpath(p)
            if real not in out:
                out.append(real)
    return out


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside another one (an empty parent already hides them)."""
    return [p for p in paths if not any(q != p and Path(p).is_relative_to(q) for q in paths)]


def _first_link(path: str) -> tuple[str, str] | None:
    """(target, link) for the first symbolic link on the way to ``path``, or None.

    Binds go to real locations; this link is recreated so the path the interpreter was started
    by (a virtual environment behind a link, say) still leads there; what lies beyond it is
    reached through its target."""
    parts = Path(os.path.abspath(path)).parts
    for i in range(2, len(parts) + 1):
        p = os.path.join(*parts[:i])
        if os.path.islink(p):
            return os.readlink(p), p
    return None


def bwrap_prefix(*, writable: Path, hide: tuple[str, ...], course: str | None, worker: str) -> list[str]:
    """The command prefix that runs the learner's interpreter inside bubblewrap."""
    import tfmcourse

    course_root = os.path.dirname(os.path.dirname(os.path.abspath(tfmcourse.__file__)))
    hidden = _outermost(
        [h for h in _existing([os.path.expanduser("~"), course_root, os.getcwd(), *hide]) if h != "/"]
    )
    paths = sysconfig.get_paths()
    python = [sys.prefix, sys.base_prefix, sys.exec_prefix, paths.get("purelib"), paths.get("platlib")]
    python += [os.path.dirname(os.path.realpath(sys.executable))]
    readable = _existing([*python, worker, *([course] if course else [])])
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-net", "--unshare-ipc"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for h in hidden:
        args += ["--tmpfs", h]
    for r in readable:
        args += ["--ro-bind", r, r]
    links: list[tuple[str, str]] = []
    for p in (sys.executable, *python, worker, *([course] if course else [])):
        link = _first_link(p) if p else None
        if link is None or link in links:
            continue
        under_tmpfs = any(Path(link[1]).is_relative_to(h) for h in [*hidden, "/tmp"])
        if under_tmpfs and not any(Path(link[1]).is_relative_to(r) for r in readable):
            links.append(link)
    for target, link in links:
        args += ["--symlink", target, link]
    for h in hidden:
        args += ["--remount-ro", h]  # empty and read-only: nothing to read, nothing kept
    return [*args, "--bind", str(writable), str(writable), "--chdir", str(writable)]
