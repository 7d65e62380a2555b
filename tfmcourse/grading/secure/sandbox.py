"""The learner's process: a clean interpreter that forks one worker per exercise.

A :class:`Sandbox` is a ``python -I -S`` interpreter running
:mod:`~tfmcourse.grading.secure.worker`, started once per grading process
(:func:`shared_sandbox`) and restarted whenever a conversation broke. For each
exercise it forks a worker with its own session, temporary folder and limits
(address space, CPU seconds, file size) and a wall-clock budget after which
its process group is killed; the conversation with that worker is a
:class:`~tfmcourse.grading.secure.session.Session`.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from tfmcourse.grading.secure import worker
from tfmcourse.grading.secure.session import Session, hello

DEFAULT_TIMEOUT = 20.0  # seconds per exercise (defining it + every call the check makes)
DEFAULT_MEMORY = 2048  # MiB of address space per exercise (torch alone maps ~650 MiB)
STARTUP_TIMEOUT = 180.0  # seconds for the clean interpreter to import torch (once per process)


class Sandbox:
    """A clean ``python -I -S`` interpreter with torch imported; forks one worker per exercise."""

    def __init__(self, memory_mb: int = DEFAULT_MEMORY):
        self.memory_mb = memory_mb
        self.proc: subprocess.Popen | None = None
        self.root = Path(tempfile.mkdtemp(prefix="tfmcourse-secure-"))
        self.fd_to = self.fd_from = -1
        self.count = 0

    def start(self) -> None:
        r_child, w_parent = os.pipe()
        r_parent, w_child = os.pipe()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8", "TMPDIR": str(self.root)}
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        paths = sysconfig.get_paths()
        site = list(dict.fromkeys(p for p in (paths.get("purelib"), paths.get("platlib")) if p))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", worker.__file__, str(r_child), str(w_child), *site],
                pass_fds=(r_child, w_child),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.root,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(r_child)
            os.close(w_child)
        self.fd_to, self.fd_from = w_parent, r_parent
        hello(self.fd_from, STARTUP_TIMEOUT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        for fd in (self.fd_to, self.fd_from):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd_to = self.fd_from = -1
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
        session = Session(self, name, timeout, workdir)
        session.fork(fields)
        return session


_SANDBOX: Sandbox | None = None


def shared_sandbox(memory: int) -> Sandbox:
    """One clean interpreter per grading process, reused for every exercise (each gets a fresh fork)."""
    global _SANDBOX
    if _SANDBOX is None or _SANDBOX.memory_mb != memory:
        if _SANDBOX is not None:
            _SANDBOX.close()
        _SANDBOX = Sandbox(memory)
        import multiprocessing.util

        atexit.register(_SANDBOX.close)
        multiprocessing.util.Finalize(_SANDBOX, _SANDBOX.close, exitpriority=10)  # pool workers skip atexit
    return _SANDBOX
