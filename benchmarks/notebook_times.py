"""Execute every lesson, solution and exercise notebook in a fresh kernel and print its wall time.

    .venv/bin/python benchmarks/notebook_times.py            # all lessons and solutions
    .venv/bin/python benchmarks/notebook_times.py notebooks/06_*.ipynb

Notebooks are run on copies (nothing is saved). Exercise notebooks stop at their
first unfilled exercise by design, so they are not timed. Prints a Markdown table
for the README's performance section, with the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "solutions").glob("*.ipynb")
    )
    print(f"machine: {machine()}\n")
    print("| notebook | wall time (s) |\n|---|---:|")
    total = 0.0
    for p in paths:
        t = run(p.resolve())
        total += t
        print(f"| `{p.resolve().relative_to(ROOT)}` | {t:.1f} |", flush=True)
    print(f"| **total** | **{total:.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
