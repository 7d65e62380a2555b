"""Time the whole test suite: wall-clock and CPU seconds (user + system, of every process it starts).

    .venv/bin/python benchmarks/suite_time.py                 # what `make test` runs
    .venv/bin/python benchmarks/suite_time.py -- -m "not slow"  # the quick loop

Arguments after ``--`` replace pytest's default ones (``-n 2 --dist loadgroup``,
as in the Makefile). Prints one line per figure and pytest's exit status.
Figures depend on the machine and its load: measure on an idle one.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = p.parse_args(argv)
    pytest_args = args.pytest_args or ["-n", "2", "--dist", "loadgroup"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "pytest", "-q", *pytest_args]
    print("running:", " ".join(cmd), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    status = subprocess.call(cmd, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    print(f"wall time: {wall:8.1f} s ({wall / 60:.1f} min)")
    print(f"CPU time:  {user + system:8.1f} s (user {user:.1f} s, system {system:.1f} s)")
    print(f"pytest exit status: {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
