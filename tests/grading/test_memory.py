"""The sandbox's memory accounting: a process tree and its proportional set size."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tfmcourse.grading.secure import memory


def test_descendants_include_grandchildren_and_pss_is_measured():
    child = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"]
    )
    try:
        for _ in range(100):
            found = memory.descendants(os.getpid())
            if child.pid in found and len(found) >= 3:
                break
            time.sleep(0.05)
        assert os.getpid() in found and child.pid in found and len(found) >= 3, found
        assert memory.pss_bytes(os.getpid()) > 1 << 20
        assert memory.pss_bytes(2**22 + 12345) == 0  # no such process
    finally:
        for pid in memory.descendants(child.pid)[::-1]:
            os.kill(pid, 9)
        child.wait()


def test_the_watchdog_kills_a_tree_over_its_limit():
    child = subprocess.Popen([sys.executable, "-c", 'import time; x = b"x" * (200 << 20); time.sleep(30)'])
    dog = memory.Watchdog(child.pid, limit=100 << 20, interval=0.05)
    try:
        assert child.wait(timeout=20) == -9
        assert dog.exceeded > 100 << 20
    finally:
        dog.stop()
