"""Grading results: statuses, points, the JSON writer, and what a learner may read."""

from __future__ import annotations

import json

import pytest

from tfmcourse.grading.report import ExerciseResult, NotebookReport, Status, write_json
from tfmcourse.grading.secure.grade import hide_seed


def test_only_a_passed_exercise_scores_and_statuses_are_one_enum():
    assert ExerciseResult("causal_mask", 6, "failed", 1, 1).points == 0
    assert ExerciseResult("causal_mask", 6, Status.PASSED, 1, 1).points == 1
    with pytest.raises(ValueError, match="'finished' is not a valid Status"):
        ExerciseResult("causal_mask", 6, "finished", 1, 1)


def test_the_json_round_trips_and_keeps_the_documented_keys(tmp_path):
    report = NotebookReport(
        "a/06_x.ipynb", [ExerciseResult("causal_mask", 6, "passed", 1, 1, "", "ok")], lesson=6
    )
    write_json(tmp_path / "r.json", [report.to_dict()], secure={"seed": 3})
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    (nb,) = data["notebooks"]
    assert data["secure"] == {"seed": 3}
    assert nb == {
        "path": "a/06_x.ipynb",
        "lesson": 6,
        "score": 1,
        "max_score": 1,
        "error": None,
        "exercises": [
            {
                "name": "causal_mask",
                "lesson": 6,
                "status": "passed",
                "points": 1,
                "max_points": 1,
                "message": "",
                "reason": "ok",
            }
        ],
    }
    assert NotebookReport.from_dict(nb).to_dict() == nb


def test_the_hidden_seed_never_reaches_a_message():
    msg = "greedy_decode: wrong tokens for the random plan (seed 918273645); expected 9182736450"
    assert hide_seed(msg, 918273645) == (
        "greedy_decode: wrong tokens for the random plan (seed <hidden seed>); expected 9182736450"
    )
    assert hide_seed("shape (7, 5)", 7) == "shape (7, 5)"


def test_a_grading_process_makes_itself_non_dumpable():
    """Other processes of the same (non-root) user then cannot open its /proc/<pid>/fd, mem or environ."""
    import subprocess
    import sys

    code = (
        "import ctypes\nfrom tfmcourse.grading.secure.grade import private_process\n"
        "libc = ctypes.CDLL(None)\nbefore = libc.prctl(3, 0, 0, 0, 0)\nprivate_process()\n"
        "print(before, libc.prctl(3, 0, 0, 0, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "0"]
