"""LMS gradebooks: roster reading, matching submission folders to learners, Canvas/Moodle CSV,
and ``tfmcourse grade --secure DIR --roster R --lms-csv F`` end to end."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from tests.export.conftest import lesson_notebook
from tfmcourse.export import lms

ROSTER = """\
Student,ID,SIS User ID,SIS Login ID,Section,Lesson 1 (123)
    Points Possible,,,,,10
"Liddell, Alice",101,S101,alice@uni.edu,A,
"Builder, Bob",102,S102,bob,B,
"Nobody, Nora",103,S103,nora@uni.edu,A,
"Smith, John",104,,jsmith@uni.edu,B,
"Smith, John",105,,jsmith2@uni.edu,B,
"""


@pytest.fixture
def roster(tmp_path) -> lms.Roster:
    path = tmp_path / "roster.csv"
    path.write_text("\ufeff" + ROSTER, encoding="utf-8")  # Excel's BOM
    return lms.read_roster(path)


def notebook(student: str, **points: int) -> dict:
    lesson = {"causal_mask": 6, "padding_mask": 6, "scaled_dot_product_attention": 6, "layer_norm": 3}
    return {
        "student": student,
        "exercises": [{"name": n, "lesson": lesson[n], "points": p} for n, p in points.items()],
    }


def test_roster_keeps_identity_columns_and_skips_the_points_possible_row(roster):
    assert roster.columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert [r["Student"] for r in roster.rows][:3] == ["Liddell, Alice", "Builder, Bob", "Nobody, Nora"]
    assert len(roster.rows) == 5


@pytest.mark.parametrize(
    "text, why",
    [("name,email\nA,a@x\n", "needs a 'Student' column"), ("Student,ID\n", "lists no learners")],
)
def test_unusable_roster_says_why(tmp_path, text, why):
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(lms.RosterError, match=why):
        lms.read_roster(tmp_path / "r.csv")


@pytest.mark.parametrize(
    "folder, student",
    [
        ("alice", "Liddell, Alice"),  # SIS Login ID before the @
        ("ALICE@uni.edu", "Liddell, Alice"),
        ("S102", "Builder, Bob"),  # SIS User ID
        ("103", "Nobody, Nora"),  # Canvas ID
        ("smithjohn_late_104_98765_06_scaled_dot_product_attention", "Smith, John"),  # Canvas download
        ("Bob Builder", "Builder, Bob"),  # a unique name, either order
    ],
)
def test_submission_folders_match_their_roster_row(roster, folder, student):
    i, why = lms.match(folder, roster)
    assert i is not None, why
    assert roster.rows[i]["Student"] == student


@pytest.mark.parametrize(
    "folder, why", [("John Smith", "matches 2 roster rows"), ("mallory", "matches no roster row")]
)
def test_ambiguous_or_unknown_folders_match_nothing_and_say_why(roster, folder, why):
    i, reason = lms.match(folder, roster)
    assert i is None and why in reason


def test_canvas_gradebook_has_points_possible_one_column_per_lesson_and_reports_unmatched(roster):
    report = {
        "notebooks": [
            notebook("alice", causal_mask=1, padding_mask=0, scaled_dot_product_attention=2),
            notebook("alice", padding_mask=1),  # a second notebook: the best per exercise counts
            notebook("S102", layer_norm=2),
            notebook("mallory", causal_mask=1),
        ]
    }
    table, result = lms.gradebook(report, roster, "canvas")
    header, possible, *rows = table
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + [
        "tfmcourse lesson 03",
        "tfmcourse lesson 06",
    ]
    assert possible == ["Points Possible", "", "", "", "", "4", "4"]
    got = {r[0]: r[5:] for r in rows}
    assert [r[0] for r in rows] == [r["Student"] for r in roster.rows]  # roster order, every learner
    assert got["Liddell, Alice"] == ["0", "4"]
    assert got["Builder, Bob"] == ["2", "0"]
    assert got["Nobody, Nora"] == ["0", "0"]
    assert [(u["student"], u["score"]) for u in result.unmatched] == [("mallory", 1)]
    assert "Nobody, Nora" in result.missing and "Liddell, Alice" not in result.missing
    text = lms.summary(result, "grades.csv")
    assert "'mallory'" in text and "NOT in the LMS file" in text


def test_moodle_file_is_the_same_without_the_points_possible_row(roster):
    report = {"notebooks": [notebook("alice", causal_mask=1)]}
    canvas, _ = lms.gradebook(report, roster, "canvas")
    moodle, _ = lms.gradebook(report, roster, "moodle")
    assert moodle == [canvas[0], *canvas[2:]]


def test_bad_roster_stops_before_grading(tmp_path):
    (tmp_path / "class").mkdir()
    (tmp_path / "r.csv").write_text("name\nx\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "grade", "--secure", str(tmp_path / "class"),
         "--roster", str(tmp_path / "r.csv"), "--lms-csv", str(tmp_path / "out.csv")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "needs a 'Student' column" in proc.stderr
    assert not (tmp_path / "out.csv").exists()


def test_grading_a_class_writes_the_lms_csv_and_reports_unmatched_folders(tmp_path):
    cls = tmp_path / "class"
    for folder, src in [("alice", "solutions"), ("S102", "exercises"), ("mallory", "solutions")]:
        (cls / folder).mkdir(parents=True)
        shutil.copyfile(lesson_notebook(src, 6), cls / folder / "06_scaled_dot_product_attention.ipynb")
    (tmp_path / "roster.csv").write_text(ROSTER)
    proc = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "grade", "--secure", str(cls), "--roster", "roster.csv",
         "--lms-csv", "canvas.csv", "--json", "details.json", "--csv", "grades.csv", "--seed", "11",
         "--jobs", "1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]  # graded, but a folder is left out of the LMS file
    rows = list(csv.reader(io.StringIO((tmp_path / "canvas.csv").read_text())))
    assert rows[0][-1] == "tfmcourse lesson 06" and rows[1][0] == "Points Possible"
    scores = {r[0]: r[-1] for r in rows[2:]}
    assert scores == {
        "Liddell, Alice": "4",
        "Builder, Bob": "0",
        "Nobody, Nora": "0",
        "Smith, John": "0",
    }
    assert len(rows) == 2 + 5 and all(len(r) == len(rows[0]) for r in rows)
    assert "'mallory'" in proc.stderr and "NOT in the LMS file" in proc.stderr
    details = json.loads((tmp_path / "details.json").read_text())
    assert [u["student"] for u in details["lms"]["unmatched"]] == ["mallory"]
    assert details["lms"]["unmatched"][0]["score"] == 4
    assert {nb["student"] for nb in details["notebooks"]} == {"alice", "S102", "mallory"}
    assert (tmp_path / "grades.csv").is_file()  # the class gradebook is still written


def test_lesson_columns_can_be_named_after_existing_assignments(roster):
    names = lms.parse_columns(["6=Lesson 6 (12345)"])
    report = {"notebooks": [notebook("alice", causal_mask=1, layer_norm=2)]}
    table, result = lms.gradebook(report, roster, "canvas", names)
    assert table[0][-2:] == ["tfmcourse lesson 03", "Lesson 6 (12345)"]
    assert result.columns == table[0][-2:]


@pytest.mark.parametrize("spec", ["Lesson 6", "six=Lesson 6", "6="])
def test_a_malformed_column_name_says_how_to_write_it(spec):
    with pytest.raises(ValueError, match="write LESSON=NAME"):
        lms.parse_columns([spec])


def test_a_dotted_folder_name_is_not_cut_at_its_dot(roster):
    # "alice.other" is not alice: only a notebook graded on its own loses its ".ipynb".
    assert lms.match("alice.other", roster)[0] is None
    i, _ = lms.match("subs/alice.ipynb", roster)
    assert roster.rows[i]["Student"] == "Liddell, Alice"


def test_two_folders_of_one_learner_count_once_at_their_best(roster):
    report = {
        "notebooks": [notebook("alice", causal_mask=1), notebook("S101", causal_mask=1, padding_mask=1)]
    }
    table, result = lms.gradebook(report, roster, "moodle")
    alice = next(r for r in table[1:] if r[0] == "Liddell, Alice")
    assert alice[-1] == "2"
    assert sorted(result.matched[0]) == ["S101", "alice"]
