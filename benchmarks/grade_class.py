"""Grade a generated class with the secure grader: throughput, peak memory, exactness, reproducibility.

A class of ``--students`` learners hands in one notebook per lesson (default lessons 03 and 06),
each drawn (seeded) from four kinds: *right* (the solution), *wrong* (the solution with one
exercise replaced by a known mistake), *not attempted* (the exercise notebook as given) and
*broken* (a truncated file that is not JSON). A roster in Canvas's format lists every learner.

The class is graded twice with the same hidden seed through the command line,
``tfmcourse grade --secure DIR --jobs N --seed S --csv … --json … --roster … --lms-csv …``,
and the script prints submissions per minute, the peak memory of the whole process tree
(the grader, its pool and every sandbox, sampled), whether every learner's total is exactly the
expected one, and whether both gradebooks (class CSV and LMS CSV) are byte-identical across the
two runs.

    .venv/bin/python benchmarks/grade_class.py                       # 200 learners x lessons 3, 6
    .venv/bin/python benchmarks/grade_class.py --students 20 --jobs 1

Timings depend on the machine's load: the script prints the load average next to them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("right", "wrong", "not attempted", "broken")
WEIGHTS = (0.45, 0.25, 0.2, 0.1)

# One known mistake per lesson: (exercise, its wrong definition).
WRONG = {
    3: (
        "layer_norm",
        "def layer_norm(x, gamma, beta, eps=1e-5):\n"
        "    mean = x.mean(-1, keepdim=True)\n"
        "    var = x.var(-1, unbiased=True, keepdim=True)\n"
        "    return (x - mean) / torch.sqrt(var + eps) * gamma + beta\n",
    ),
    6: (
        "scaled_dot_product_attention",
        "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
        "    scores = q @ k.transpose(-2, -1)\n"
        "    if attn_mask is not None:\n"
        '        scores = scores.masked_fill(attn_mask, float("-inf"))\n'
        "    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)\n"
        "    return weights @ v, weights\n",
    ),
}


def notebook_of(folder: str, lesson: int) -> Path:
    (path,) = sorted((ROOT / folder).glob(f"{lesson:02d}_*.ipynb"))
    return path


def wrong_notebook(lesson: int) -> str:
    name, source = WRONG[lesson]
    nb = nbformat.read(notebook_of("solutions", lesson), as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(f"def {name}(")]
    cell.source = source
    return nbformat.writes(nb)


def make_class(folder: Path, students: int, lessons: list[int], seed: int) -> tuple[dict[str, int], Path]:
    """Write ``folder/<login>/NN_….ipynb`` and a roster; the expected total of every learner."""
    from tfmcourse.checks import EXERCISES

    rng = random.Random(seed)
    files = {}
    for lesson in lessons:
        right = notebook_of("solutions", lesson).read_text()
        files[lesson] = {
            "right": right,
            "wrong": wrong_notebook(lesson),
            "not attempted": notebook_of("exercises", lesson).read_text(),
            "broken": right[: len(right) // 2],
        }
    expected: dict[str, int] = {}
    roster = folder.parent / "roster.csv"
    with open(roster, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"])
        for i in range(students):
            login = f"learner{i:04d}"
            w.writerow(
                [f"Learner, Number {i}", 1000 + i, f"S{i:05d}", f"{login}@example.edu", "A" if i % 2 else "B"]
            )
            (folder / login).mkdir(parents=True)
            total = 0
            for lesson in lessons:
                kind = rng.choices(KINDS, WEIGHTS)[0]
                name = notebook_of("exercises", lesson).name
                (folder / login / name).write_text(files[lesson][kind], encoding="utf-8")
                full = sum(e.points for e in EXERCISES.values() if e.lesson == lesson)
                if kind == "right":
                    total += full
                elif kind == "wrong":
                    total += full - EXERCISES[WRONG[lesson][0]].points
            expected[login] = total
    return expected, roster


def run_grader(cmd: list[str], cwd: Path) -> tuple[float, int, int]:
    """Wall seconds, peak resident memory of the whole process tree (bytes), exit status."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    top = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        rss = 0
        with contextlib.suppress(psutil.Error):
            for child in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # it may exit while we look
                    rss += child.memory_info().rss
        peak = max(peak, rss)
        time.sleep(0.2)
    seconds = time.monotonic() - start
    err = proc.stderr.read()
    if proc.returncode != 0:
        sys.stderr.write(err[-3000:])
    return seconds, peak, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=200)
    p.add_argument("--lessons", default="3,6", help="comma-separated lessons (with a known mistake: 3, 6)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="seed of the class and of the hidden inputs")
    p.add_argument("--keep", help="keep the class and the gradebooks in this folder")
    args = p.parse_args(argv)
    lessons = [int(x) for x in args.lessons.split(",")]
    if set(lessons) - set(WRONG):
        p.error(f"lessons with a known mistake here: {sorted(WRONG)}")

    with tempfile.TemporaryDirectory(prefix="tfmcourse-class-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        expected, roster = make_class(work / "class", args.students, lessons, args.seed)
        n = args.students * len(lessons)
        print(f"class: {args.students} learners x lessons {lessons} = {n} notebooks (seed {args.seed})")
        runs = []
        for r in (1, 2):
            cmd = [
                sys.executable, "-m", "tfmcourse", "grade", "--secure", "class", "--jobs", str(args.jobs),
                "--seed", str(args.seed), "--csv", f"grades{r}.csv", "--json", f"details{r}.json",
                "--roster", str(roster), "--lms-csv", f"canvas{r}.csv",
            ]  # fmt: skip
            load = os.getloadavg()[0]
            seconds, peak, status = run_grader(cmd, work)
            runs.append((seconds, peak, status))
            print(
                f"run {r}: {seconds:.1f} s, {n / seconds * 60:.0f} submissions/min, "
                f"peak memory {peak / 2**20:.0f} MiB (process tree), exit {status}, load average {load:.1f}"
            )
        with open(work / "grades1.csv", newline="", encoding="utf-8") as f:
            got = {row["student"]: int(row["total"]) for row in csv.DictReader(f)}
        wrong = {s: (got.get(s), e) for s, e in expected.items() if got.get(s) != e}
        same = all(
            (work / f"{name}1.csv").read_bytes() == (work / f"{name}2.csv").read_bytes()
            for name in ("grades", "canvas")
        )
        print(
            f"totals exact: {'yes' if not wrong else f'NO ({len(wrong)} differ, e.g. {sorted(wrong.items())[:3]})'}"
        )
        print(
            f"gradebooks byte-identical across the two runs (class CSV and LMS CSV): {'yes' if same else 'NO'}"
        )
        print(f"machine: {os.cpu_count()} CPUs; timings depend on its load")
        return 0 if not wrong and same and all(s == 0 for _, _, s in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
