"""Memory of one exercise, all its processes together: the sandbox's own accounting.

``RLIMIT_AS`` bounds each process; learner code that forks could still use a
multiple of the limit. A :class:`Watchdog` thread sums the proportional set
size (``Pss``: shared pages split between the processes sharing them) of the
worker and every process descended from it, a few times a second, and kills
them all once the sum passes the limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every process descended from it (also those that left its session)."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Watchdog:
    """Kills the worker ``pid`` and its descendants when together they use more than ``limit`` bytes."""

    def __init__(self, pid: int, limit: int, interval: float = 0.2):
        self.pid, self.limit, self.interval = pid, limit, interval
        self.exceeded = 0  # the total seen when the limit was passed, else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"memory-watchdog-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            pids = descendants(self.pid)
            total = sum(pss_bytes(p) for p in pids)
            if total > self.limit:
                self.exceeded = total
                for p in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGKILL)
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
