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


def resolve(mode: str) -> tuple[str, str]:
    """(the mode to use, a sentence saying so) for ``--isolation mode``."""
    if mode not in MODES:
        raise ValueError(f"--isolation must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        return "none", "isolation: none (learner code runs with your user's files and network)"
    problem = bwrap_problem()
    if problem is None:
        return (
            "bwrap",
            "isolation: bwrap (no network, no view of your files, the course or other submissions)",
        )
    if mode == "bwrap":
        raise IsolationUnavailable(f"cannot isolate learner code: {problem}")
    return "none", f"isolation: none ({problem})"


def _existing(paths) -> list[str]:
    out = []
    for p in paths:
        if p and os.path.isdir(p) and str(p) not in out:
            out.append(str(p))
    return out


def bwrap_prefix(*, writable: Path, hide: tuple[str, ...], course: str | None, worker: str) -> list[str]:
    """The command prefix that runs the learner's interpreter inside bubblewrap."""
    import tfmcourse

    course_root = os.path.dirname(os.path.dirname(os.path.abspath(tfmcourse.__file__)))
    hidden = _existing([os.path.expanduser("~"), course_root, os.getcwd(), *hide])
    paths = sysconfig.get_paths()
    python = [sys.prefix, sys.base_prefix, sys.exec_prefix, paths.get("purelib"), paths.get("platlib")]
    python += [os.path.realpath(p) for p in python if p] + [os.path.dirname(os.path.realpath(sys.executable))]
    readable = _existing([*python, worker, *([course] if course else [])])
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-net", "--unshare-ipc"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for h in hidden:
        if h != "/":
            args += ["--tmpfs", h]
    for r in readable:
        args += ["--ro-bind", r, r]
    for h in hidden:
        if h != "/":
            args += ["--remount-ro", h]  # empty and read-only: nothing to read, nothing kept
    return [*args, "--bind", str(writable), str(writable), "--chdir", str(writable)]
