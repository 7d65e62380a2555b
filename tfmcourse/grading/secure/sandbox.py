"""The learner's process: a clean interpreter that forks one worker per exercise.

A :class:`Sandbox` is a ``python -I -S`` interpreter running
:mod:`~tfmcourse.grading.secure.worker`, started once per grading process
(:func:`shared_sandbox`) and restarted whenever a conversation broke. For each
exercise it forks a worker with its own session, temporary folder and limits
(address space, CPU seconds, file size) and a wall-clock budget after which
its process group is killed; when the grader is root the worker also gives up
root before running learner code (:mod:`.privileges`). The conversation with
that worker is a :class:`~tfmcourse.grading.secure.session.Session`.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from tfmcourse.grading.secure import isolation, memory, privileges, worker
from tfmcourse.grading.secure.session import Session, hello

DEFAULT_TIMEOUT = 20.0  # seconds per exercise (defining it + every call the check makes)
DEFAULT_MEMORY = 2048  # MiB of address space per exercise (torch alone maps ~650 MiB)
STARTUP_TIMEOUT = 180.0  # seconds for the clean interpreter to import torch (once per process)


class Sandbox:
    """A clean ``python -I -S`` interpreter with torch imported; forks one worker per exercise."""

    def __init__(
        self,
        memory_mb: int = DEFAULT_MEMORY,
        isolation: str = "none",
        hide: tuple[str, ...] = (),
        course: bool = False,
        run_as: str = "auto",
    ):
        self.memory_mb, self.isolation, self.hide, self.course = memory_mb, isolation, hide, course
        self.user = privileges.plan(run_as)  # who learner code runs as (None: the grader's own user)
        self.worker_uid: int | None = None  # the current worker's own user, when it has one
        self.proc: subprocess.Popen | None = None
        self.root = Path(tempfile.mkdtemp(prefix="tfmcourse-secure-"))
        if self.user is not None:
            self.root.chmod(0o711)  # each worker's folder inside is its own; this one is not listable
        self.fd_to = self.fd_from = -1
        self.count = 0
        self.zygote = 0  # pid of the interpreter that forks the workers

    def start(self) -> None:
        problem = python_problem(self.user)
        if problem is not None:
            raise RuntimeError(problem)
        # one socket pair, not two pipes: a pipe can be opened again for writing through
        # /proc/<pid>/fd by any process of its owner, so learner code running as the grader's user
        # could queue a forged request for the next exercise; a socket cannot be opened that way
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        w_parent, r_child = ours.detach(), theirs.detach()
        r_parent, w_child = os.dup(w_parent), os.dup(r_child)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8", "TMPDIR": str(self.root)}
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        paths = sysconfig.get_paths()
        site = list(dict.fromkeys(p for p in (paths.get("purelib"), paths.get("platlib")) if p))
        with tempfile.TemporaryFile() as log:  # what went wrong before the interpreter was ready
            try:
                self.proc = subprocess.Popen(
                    [
                        *self._prefix(),
                        sys.executable,
                        "-I",
                        "-S",
                        worker.__file__,
                        str(r_child),
                        str(w_child),
                        *site,
                    ],
                    pass_fds=(r_child, w_child),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    cwd=self.root,
                    env=env,
                    start_new_session=True,
                )
            finally:
                os.close(r_child)
                os.close(w_child)
            self.fd_to, self.fd_from = w_parent, r_parent
            try:
                self.zygote = hello(self.fd_from, STARTUP_TIMEOUT)
            except (OSError, RuntimeError, TimeoutError, EOFError, ValueError) as exc:
                raise RuntimeError(self._startup_failure(exc, log)) from exc

    def _startup_failure(self, exc: BaseException, log) -> str:
        """What failed when the interpreter did not say it was ready: its own error output, else
        its exit status, else the exception."""
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 4096))
        lines = log.read().decode(errors="replace").strip().splitlines()
        where = f"{' '.join(self._prefix()[:1]) or 'python'} with isolation {self.isolation}"
        if lines:
            return f"{where}: {lines[-1][:400]}"
        code = self.proc.poll() if self.proc is not None else None
        if code is not None:
            return f"{where}: the interpreter exited with status {code} before it was ready"
        return f"{where}: {type(exc).__name__}: {exc or 'no reply'}"

    def _prefix(self) -> list[str]:
        if self.isolation != "bwrap":
            return []
        import tfmcourse

        course = os.path.dirname(os.path.abspath(tfmcourse.__file__)) if self.course else None
        return isolation.bwrap_prefix(
            writable=self.root, hide=self.hide, course=course, worker=os.path.dirname(worker.__file__)
        )

    def kill_strays(self) -> None:
        """Kill every process under the interpreter but itself: what an exercise left behind, also
        processes that left its session or were orphaned (the interpreter adopts them)."""
        if self.zygote and self.alive():
            for pid in memory.descendants(self.zygote):
                if pid != self.zygote:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        if self.worker_uid is not None:  # whatever runs as the worker's own user, wherever it went
            privileges.kill_users({self.worker_uid})
            self.worker_uid = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        for fd in (self.fd_to, self.fd_from):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd_to = self.fd_from = -1
        self.zygote = 0
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def open(self, name: str, code: dict, timeout: float) -> Session:
        """Fork a worker for exercise ``name`` with ``code`` (chunks, lines, bind, prune, forbidden)."""
        if not self.alive():
            self.stop()
            self.start()
        self.count += 1
        workdir = self.root / f"ex{self.count}"
        fields = {"exercise": name, **code, "memory_mb": self.memory_mb, "workdir": str(workdir)}
        fields["cpu_seconds"] = math.ceil(timeout) + 1
        fields["run_as"] = self.user
        session = Session(self, name, timeout, workdir)
        session.fork(fields)
        if self.user is not None and "base" in self.user:
            self.worker_uid = privileges.identity(self.user, session.pid)[0]
        return session


def python_folders() -> list[str]:
    """The folders of this Python installation learner code may import from."""
    paths = sysconfig.get_paths()
    found = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    return list(dict.fromkeys(p for p in found if p and os.path.isdir(p)))


def python_problem(user: dict | None) -> str | None:
    """Why learner code could not run as ``user`` with this Python installation, or None."""
    problem = privileges.unreadable(user, python_folders())
    if problem is None:
        return None
    return (
        f"{problem}. Learner code runs as an unprivileged user when the grader is root: make the "
        "Python installation readable by every user (chmod o+rX), or choose an account that can read "
        "it with --run-as"
    )


_SANDBOXES: dict[tuple, Sandbox] = {}


def shared_sandbox(
    memory: int,
    isolation: str = "none",
    hide: tuple[str, ...] = (),
    course: bool = False,
    run_as: str = "auto",
) -> Sandbox:
    """One clean interpreter per grading process and kind (with or without the course package
    visible), reused for every exercise (each gets a fresh fork)."""
    key = (memory, isolation, tuple(hide), run_as, course)
    if key not in _SANDBOXES:
        for other in [k for k in _SANDBOXES if k[:4] != key[:4]]:
            _SANDBOXES.pop(other).close()
        sandbox = _SANDBOXES[key] = Sandbox(memory, isolation, tuple(hide), course, run_as)
        import multiprocessing.util

        atexit.register(sandbox.close)
        multiprocessing.util.Finalize(sandbox, sandbox.close, exitpriority=10)  # pool workers skip atexit
    return _SANDBOXES[key]
