"""Grading a class: `tfmcourse grade --secure submissions/` → an exact CSV gradebook and JSON details."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.grading.builders import (
    correct_impls,
    impl_source,
    stub_source,
    write_notebook,
    wrong_impls,
)
from tfmcourse.checks import EXERCISES
from tfmcourse.grading import gradebook
from tfmcourse.grading.report import ExerciseResult, NotebookReport, write_json

LESSON = 6
NAMES = [n for n, e in EXERCISES.items() if e.lesson == LESSON]
SECOND = [n for n, e in EXERCISES.items() if e.lesson == 9 and n in ("noam_lr", "teacher_forcing_batch")]
# a 09_*.ipynb notebook is graded on every lesson-9 exercise (those it leaves out: not attempted)
SECOND_ALL = [n for n, e in EXERCISES.items() if e.lesson == 9] if SECOND else []
N_STUDENTS = 22


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes() if p.is_file() else b"<dir>")
    return h.hexdigest()


def _choose(rng: random.Random, name: str) -> tuple[str, int]:
    """(source, expected points) for one exercise: a correct, a wrong or an unfilled implementation."""
    kind = rng.choice(["correct", "correct", "wrong", "stub"])
    if kind == "correct":
        return impl_source(rng.choice(correct_impls(name)).impl, name), EXERCISES[name].points
    if kind == "wrong":
        return impl_source(rng.choice(wrong_impls(name)).impl, name), 0
    return stub_source(name), 0


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    rng = random.Random(7)
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    expected: dict[str, dict[str, int]] = {}
    notes: dict[str, str] = {}
    for i in range(N_STUDENTS):
        student = f"student{i:02d}"
        codes, points = {}, {}
        for name in NAMES:
            codes[name], points[name] = _choose(rng, name)
        write_notebook(subs / student / "06_scaled_dot_product_attention.ipynb", codes)
        if SECOND and i % 4 == 0:  # some students also hand in a lesson 09 notebook
            codes2 = {}
            for name in SECOND:
                codes2[name], points[name] = _choose(rng, name)
            write_notebook(subs / student / "09_training.ipynb", codes2)
        expected[student] = points
    # broken submissions: reported for that student, never stop the run
    (subs / "student03" / "notes.txt").write_text("my answers are in the notebook")
    notes["student03"] = "notes.txt: not a notebook (expected a .ipynb file, got 'notes.txt')"
    (subs / "zz_broken").mkdir()
    (subs / "zz_broken" / "06_scaled_dot_product_attention.ipynb").write_text('{"cells": [')
    notes["zz_broken"] = "06_scaled_dot_product_attention.ipynb: not valid notebook JSON"
    (subs / "zz_empty").mkdir()
    (subs / "zz_empty" / "06_scaled_dot_product_attention.ipynb").write_bytes(b"")
    notes["zz_empty"] = "06_scaled_dot_product_attention.ipynb: the file is empty"
    (subs / "zz_nothing").mkdir()
    notes["zz_nothing"] = "zz_nothing: the folder is empty"
    (subs / ".ipynb_checkpoints").mkdir()  # hidden: ignored
    for s in ("zz_broken", "zz_empty", "zz_nothing"):
        expected[s] = {}
    before = tree_digest(subs)
    exe = Path(sys.executable).with_name("tfmcourse")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tfmcourse"]
    proc = subprocess.run(
        cmd
        + [
            "grade",
            "--secure",
            str(subs),
            "--csv",
            str(root / "grades.csv"),
            "--json",
            str(root / "details.json"),
            "--jobs",
            "2",
            "--seed",
            "12345",
            "--lesson",
            str(LESSON),
            *(["--lesson", "9"] if SECOND else []),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    return dict(root=root, subs=subs, proc=proc, expected=expected, notes=notes, before=before)


def _runs_and_leaves_submissions_untouched(graded_class):
    proc = graded_class["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree_digest(graded_class["subs"]) == graded_class["before"], "grading modified submissions/"
    assert "grading" in proc.stderr  # the progress bar
    assert "gradebook written to" in proc.stdout


def _gradebook_csv_is_exact(graded_class):
    rows = list(csv.reader((graded_class["root"] / "grades.csv").open(encoding="utf-8")))
    columns = NAMES + SECOND_ALL
    lessons = [LESSON] + ([9] if SECOND else [])
    per_lesson = [f"lesson_{n:02d}" for n in lessons]
    assert rows[0] == ["student", *columns, *per_lesson, "total", "max_total", "notes"]
    max_total = sum(EXERCISES[n].points for n in columns)
    want = []
    for student in sorted(graded_class["expected"]):
        pts = [graded_class["expected"][student].get(n, 0) for n in columns]
        by_lesson = [sum(p for n, p in zip(columns, pts) if EXERCISES[n].lesson == k) for k in lessons]
        want.append([student, *map(str, pts), *map(str, by_lesson), str(sum(pts)), str(max_total)])
    assert [r[:-1] for r in rows[1:]] == want
    got_notes = {r[0]: r[-1] for r in rows[1:]}
    for student, note in graded_class["notes"].items():
        assert got_notes[student].startswith(note), (student, got_notes[student])
    assert all(not n for s, n in got_notes.items() if s not in graded_class["notes"])
    assert len(rows) - 1 >= 20


def _json_details_have_every_notebook_with_reasons(graded_class):
    data = json.loads((graded_class["root"] / "details.json").read_text())
    nbs = data["notebooks"]
    assert data["secure"]["seed"] == 12345
    assert data["assignment"]["lessons"] == [LESSON] + ([9] if SECOND else [])
    assert data["assignment"]["max_points"]["total"] == sum(EXERCISES[n].points for n in NAMES + SECOND_ALL)
    students = {nb["student"] for nb in nbs}
    assert students == set(graded_class["expected"])
    for nb in nbs:
        assert set(nb) >= {"student", "path", "score", "max_score", "error", "exercises"}
        for e in nb["exercises"]:
            assert e["reason"], e
            exp = graded_class["expected"][nb["student"]].get(e["name"], 0)
            assert e["points"] == exp, (nb["student"], e)
    broken = [nb for nb in nbs if nb["student"] == "zz_broken"]
    assert broken and broken[0]["error"] and broken[0]["score"] == 0


@pytest.mark.slow
def test_grading_a_class(graded_class):
    """One test (one grading run of the whole class), three parts."""
    _runs_and_leaves_submissions_untouched(graded_class)
    _gradebook_csv_is_exact(graded_class)
    _json_details_have_every_notebook_with_reasons(graded_class)


def test_collect_layout(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "06_x.ipynb").write_text("{}")
    (tmp_path / "b.ipynb").write_text("{}")
    (tmp_path / ".hidden").mkdir()
    subs = gradebook.collect([str(tmp_path)])
    assert [(s.student, Path(s.path).name, s.problem) for s in subs] == [
        ("a", "06_x.ipynb", None),
        ("b", "b.ipynb", None),
    ]


def test_refuses_to_write_into_the_graded_folder(tmp_path, monkeypatch, capsys):
    from tfmcourse import cli

    write_notebook(tmp_path / "subs" / "ann" / "06_a.ipynb", {"causal_mask": stub_source("causal_mask")})
    monkeypatch.chdir(tmp_path)
    assert cli.main(["grade", "--secure", "subs", "--csv", "subs/grades.csv"]) == 2
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "subs" / "grades.csv").exists()


def _report(path: str, lesson: int, points: dict[str, int]) -> NotebookReport:
    exercises = [
        ExerciseResult(n, lesson, "passed" if p else "failed", p, EXERCISES[n].points)
        for n, p in points.items()
    ]
    return NotebookReport(path=path, exercises=exercises, lesson=lesson)


def test_the_maximum_is_the_assignments_for_every_student():
    """An extra lesson-7 notebook from one student changes nobody's maximum, nor the columns."""
    full6 = {n: EXERCISES[n].points for n in NAMES}
    lesson7 = [n for n, e in EXERCISES.items() if e.lesson == 7]
    graded = [
        ("ann", _report("ann/06_a.ipynb", LESSON, full6)),
        ("bob", _report("bob/06_a.ipynb", LESSON, dict.fromkeys(NAMES, 0))),
        ("bob", _report("bob/07_b.ipynb", 7, {n: EXERCISES[n].points for n in lesson7})),
    ]
    header, table = gradebook.rows(graded, [LESSON])
    assert header == ["student", *NAMES, f"lesson_{LESSON:02d}", "total", "max_total", "notes"]
    max6 = sum(full6.values())
    assert [r[-3:-1] for r in table] == [[max6, max6], [0, max6]]
    assert "07_b.ipynb: not part of the assignment" in table[1][-1]
    both = gradebook.rows(graded, [LESSON, 7])[1]
    assert [r[-2] for r in both] == [max6 + sum(EXERCISES[n].points for n in lesson7)] * 2
    assert gradebook.maxima([LESSON])["total"] == max6


def test_an_unreadable_notebook_counts_zero_of_its_lesson_with_the_reason():
    broken = NotebookReport(path="cat/06_a.ipynb", lesson=LESSON).unreadable("the file is empty")
    assert broken.score == 0 and broken.max_score == sum(EXERCISES[n].points for n in NAMES)
    _header, (row,) = gradebook.rows([("cat", broken)], [LESSON])
    assert row[-1] == "06_a.ipynb: the file is empty" and row[-2] == broken.max_score


def test_links_out_of_the_class_folder_are_not_followed(tmp_path):
    outside = tmp_path / "solutions"
    outside.mkdir()
    (outside / "06_x.ipynb").write_text("{}")
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    (subs / "ann" / "06_x.ipynb").write_text("{}")
    (subs / "ann" / "theirs.ipynb").symlink_to(outside / "06_x.ipynb")
    (subs / "mallory").symlink_to(outside)
    got = {(s.student, Path(s.path).name): s.problem for s in gradebook.collect([str(subs)])}
    assert got[("ann", "06_x.ipynb")] is None
    assert "outside the class folder" in got[("ann", "theirs.ipynb")]
    assert "outside the class folder" in got[("mallory", "mallory")]


def test_folder_names_of_any_bytes_survive_into_csv_and_json(tmp_path):
    name = os.fsdecode(b"caf\xe9")  # Latin-1 bytes, as LMS zip downloads produce
    graded = [(name, _report(f"{name}/06_a.ipynb", LESSON, {n: EXERCISES[n].points for n in NAMES}))]
    gradebook.write_csv(graded, tmp_path / "g.csv", [LESSON])
    write_json(tmp_path / "g.json", [{"student": s, **r.to_dict()} for s, r in graded])
    (row,) = list(csv.reader((tmp_path / "g.csv").open(encoding="utf-8")))[1:]
    assert row[0] == "caf\\udce9"
    (nb,) = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))["notebooks"]
    assert os.fsencode(nb["student"]) == b"caf\xe9"


@pytest.mark.slow
def test_a_class_with_a_folder_name_that_is_not_utf8_is_graded_to_the_end(tmp_path):
    subs = tmp_path / "subs"
    student = os.fsdecode(b"jos\xe9")
    write_notebook(
        subs / student / "06_a.ipynb",
        {"causal_mask": impl_source(correct_impls("causal_mask")[0].impl, "causal_mask")},
    )
    write_notebook(subs / "ann" / "06_a.ipynb", {"causal_mask": stub_source("causal_mask")})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfmcourse",
            "grade",
            "--secure",
            str(subs),
            "--lesson",
            "6",
            "--seed",
            "99999",
            "--csv",
            str(tmp_path / "g.csv"),
            "--json",
            str(tmp_path / "g.json"),
            "--jobs",
            "1",
        ],
        capture_output=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.reader((tmp_path / "g.csv").open(encoding="utf-8")))
    assert [r[0] for r in rows[1:]] == ["ann", "jos\\udce9"]
    assert rows[2][rows[0].index("causal_mask")] == str(EXERCISES["causal_mask"].points)
    students = {
        nb["student"] for nb in json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))["notebooks"]
    }
    assert {os.fsencode(s) for s in students} == {b"ann", b"jos\xe9"}
