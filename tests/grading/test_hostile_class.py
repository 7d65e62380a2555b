"""A class with hostile submissions mixed in grades every honest student exactly as it does alone.

The class is graded twice with ``--jobs 2``: honest students only, then the same folder with
hostile classmates between them (sorted names interleave). Each hostile notebook attacks through
``causal_mask``: the grading channel and the descriptors it inherited, its parent's descriptors
through ``/proc`` (also those alone, so that its own exercise sees nothing wrong), a daemon that outlives it and later writes to the class folder and gradebook,
sleeping, flooding its output, memory, processes, and a signal to the interpreter that forked it.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.grading.builders import (
    correct_impls,
    impl_source,
    lesson_names,
    stub_source,
    write_notebook,
    wrong_impls,
)

pytestmark = pytest.mark.slow  # grades a class twice

LESSON = 6
ATTACKED = "causal_mask"
TIMEOUT, MEMORY = 10, 1200  # small limits keep the run short; an honest exercise needs far less

#: What the hostile code does before it raises: it never earns the exercise's points honestly.
ATTACKS = {
    "fd-garbage": """
        import os, struct
        def causal_mask(T):
            junk = b"TFMG" + struct.pack("<II", 1 << 20, 7) + b'{"op": "result", "payl'
            targets = [str(fd) for fd in range(256)]
            try:
                targets += [f"/proc/{os.getppid()}/fd/{n}" for n in os.listdir(f"/proc/{os.getppid()}/fd")]
            except OSError:
                pass
            for t in targets:
                try:
                    fd = int(t) if t.isdigit() else os.open(t, os.O_WRONLY | os.O_NONBLOCK)
                    os.write(fd, junk)
                except OSError:
                    pass
            raise RuntimeError("wrote garbage")
    """,
    "parent-inbound": """
        import os
        def causal_mask(T):
            # the interpreter that forked it reads its requests from the descriptor named on its
            # command line: half a frame there, for the next exercise's request to complete, and
            # this process stops reading it (nothing wrong on this exercise's own channel)
            parent = os.getppid()
            try:
                with open(f"/proc/{parent}/cmdline", "rb") as f:
                    fd_in = f.read().split(b"\\0")[4].decode()
            except (OSError, IndexError):
                fd_in = "3"
            for path in (f"/proc/{parent}/fd/{fd_in}", f"/proc/self/fd/{fd_in}"):
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                    os.write(fd, b"TFMG\\x40\\x00\\x00\\x00\\x00\\x00\\x00\\x00{\\"op\\": \\"fo")
                    os.close(int(fd_in))
                    break
                except OSError:
                    pass
            raise RuntimeError("wrote to its parent's descriptor")
    """,
    "fd-close-dup": """
        import os, torch
        def causal_mask(T):
            for fd in range(3, 256):
                try:
                    os.dup2(0, fd) if fd % 2 else os.close(fd)
                except OSError:
                    pass
            return torch.ones(T, T, dtype=torch.bool)
    """,
    "daemon": """
        import os, time
        def causal_mask(T):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(3)
                    for target in (CSV, OTHER, PROOF):
                        try:
                            with open(target, "a") as f:
                                f.write("escaped\\n")
                        except OSError:
                            pass
                os._exit(0)
            os.wait()
            raise RuntimeError("left a daemon behind")
    """,
    "sleep": """
        import time
        def causal_mask(T):
            time.sleep(600)
    """,
    "flood": """
        import sys
        def causal_mask(T):
            line = "x" * 65536
            while True:
                print(line)
                sys.stderr.write(line)
    """,
    "memory": """
        import os, time, torch
        def causal_mask(T):
            for _ in range(3):
                if os.fork() == 0:
                    hog = torch.ones(100 * 2**20)  # 400 MB each, touched
                    time.sleep(60)
                    os._exit(0)
            hog = [torch.ones(2**27) for _ in range(20)]
            time.sleep(60)
    """,
    "processes": """
        import os, time
        def causal_mask(T):
            for _ in range(400):
                try:
                    if os.fork() == 0:
                        time.sleep(60)
                        os._exit(0)
                except OSError:
                    break
            raise RuntimeError("forked")
    """,
    "kill-parent": """
        import os, signal
        def causal_mask(T):
            for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
                try:
                    os.kill(os.getppid(), sig)
                except OSError:
                    pass
            raise RuntimeError("killed its parent")
    """,
}


def honest_students() -> dict[str, dict[str, str]]:
    """Seven honest notebooks of lesson 6: right, wrong, not attempted and mixtures."""
    names = lesson_names(LESSON)

    def right(n, i=0):
        return impl_source(correct_impls(n)[i % len(correct_impls(n))].impl, n)

    def wrong(n, i=0):
        return impl_source(wrong_impls(n)[i % len(wrong_impls(n))].impl, n)

    return {
        "s01": {n: right(n) for n in names},
        "s03": {n: wrong(n) for n in names},
        "s05": {n: stub_source(n) for n in names},
        "s07": {n: (right(n, 1) if i % 2 else wrong(n, 1)) for i, n in enumerate(names)},
        "s09": {n: (stub_source(n) if i % 2 else right(n, 1)) for i, n in enumerate(names)},
        "s11": {n: right(n, 2) for n in names},
        "s13": {n: (wrong(n, 2) if i % 2 else right(n)) for i, n in enumerate(names)},
    }


def grade_class(subs: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tfmcourse", "grade", "--secure", str(subs), "--jobs", "2"]
    cmd += ["--seed", "2468", "--lesson", str(LESSON), "--timeout", str(TIMEOUT), "--memory", str(MEMORY)]
    cmd += ["--isolation", "none", "--csv", str(out / "grades.csv"), "--json", str(out / "details.json")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=out, env=env)


def rows(out: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Per student: the CSV line and the JSON details (canonical text)."""
    lines = (out / "grades.csv").read_text().splitlines()
    by_csv = {row[0]: line for row, line in zip(csv.reader(lines[1:]), lines[1:])}
    details = json.loads((out / "details.json").read_text())
    by_json = {nb["student"]: json.dumps(nb, sort_keys=True) for nb in details["notebooks"]}
    return by_csv, by_json


def test_honest_students_grade_exactly_as_alone_with_hostile_classmates(tmp_path, shared_folder):
    subs = tmp_path / "class"
    honest = honest_students()
    for student, codes in honest.items():
        write_notebook(subs / student / "06_attention.ipynb", codes)
    alone, mixed = tmp_path / "alone", tmp_path / "mixed"
    alone.mkdir()
    mixed.mkdir()
    proc = grade_class(subs, alone)
    assert proc.returncode == 0, proc.stderr[-2000:]

    hostile = {}
    for i, (kind, code) in enumerate(ATTACKS.items()):
        student = f"s{2 * i + 2:02d}-{kind}"  # between two honest students
        code = textwrap.dedent(code).replace("CSV", repr(str(mixed / "grades.csv")))
        code = code.replace("OTHER", repr(str(subs / "s01" / "06_attention.ipynb")))
        code = code.replace("PROOF", repr(str(shared_folder / student)))
        write_notebook(subs / student / "06_attention.ipynb", {ATTACKED: code})
        hostile[student] = kind
    notebooks_before = {p: p.read_bytes() for p in subs.rglob("*.ipynb")}
    proc = grade_class(subs, mixed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    csv_after, json_after = (mixed / "grades.csv").read_bytes(), (mixed / "details.json").read_bytes()

    csv_alone, json_alone = rows(alone)
    csv_mixed, json_mixed = rows(mixed)
    assert set(csv_mixed) == set(honest) | set(hostile)
    for student in honest:
        assert csv_mixed[student] == csv_alone[student], student
        assert json_mixed[student] == json_alone[student], student
    details = {nb["student"]: nb for nb in json.loads(json_after)["notebooks"]}
    for student, kind in hostile.items():
        attacked = [e for e in details[student]["exercises"] if e["name"] == ATTACKED]
        assert attacked and attacked[0]["points"] == 0, (kind, attacked)
        assert attacked[0]["status"] != "passed", (kind, attacked)
    assert all(e["status"] == "passed" for e in details["s01"]["exercises"])  # right answers still count

    time.sleep(4)  # the daemon's moment to write, had it survived
    assert not list(shared_folder.iterdir()), "a process started by learner code outlived grading"
    assert (mixed / "grades.csv").read_bytes() == csv_after
    assert (mixed / "details.json").read_bytes() == json_after
    assert {p: p.read_bytes() for p in subs.rglob("*.ipynb")} == notebooks_before
