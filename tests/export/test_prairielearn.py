"""The PrairieLearn question, graded locally the way PrairieLearn does: ``tests/`` copied to
``/grade/tests``, the upload to ``/grade/student``, then the entry point writes ``/grade/results``."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.export.conftest import (
    ROOT,
    UNSCALED_MISTAKE,
    UNSCALED_SDPA,
    lesson_notebook,
    place_upload,
    with_definition,
)
from tfmcourse.checks import EXERCISES
from tfmcourse.export import prairielearn
from tfmcourse.export.bundle import ExportError

TEST_FIELDS = {"name", "description", "points", "max_points", "message", "output", "images"}


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Path:
    return prairielearn.build(ROOT, 6, tmp_path_factory.mktemp("pl") / "lesson06", image="me/tfm:1")


def grade(question: Path, tmp: Path, files: dict[str, Path | bytes], env: dict) -> dict:
    grade_root = tmp / "grade"
    shutil.copytree(question / "tests", grade_root / "tests")
    place_upload(files, grade_root / "student")
    info = json.loads((question / "info.json").read_text())
    entry = info["externalGradingOptions"]["entrypoint"]
    assert entry.startswith("/grade/")
    proc = subprocess.run(
        [str(grade_root / entry.removeprefix("/grade/"))],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((grade_root / "results" / "results.json").read_text())
    assert (grade_root / "results" / "results.json").stat().st_size < 1_000_000  # PrairieLearn's limit
    return results


def validate_gradable(results: dict) -> None:
    assert results["gradable"] is True
    assert 0.0 <= results["score"] <= 1.0
    for t in results["tests"]:
        assert set(t) <= TEST_FIELDS
        assert 0 <= t["points"] <= t["max_points"]
    total = sum(t["points"] for t in results["tests"])
    assert results["score"] == pytest.approx(total / sum(t["max_points"] for t in results["tests"]))


def test_question_files_follow_the_external_grading_layout(question):
    info = json.loads((question / "info.json").read_text())
    uuid.UUID(info["uuid"])
    assert info["gradingMethod"] == "External" and info["type"] == "v3"
    options = info["externalGradingOptions"]
    assert options["enabled"] is True and options["image"] == "me/tfm:1"
    assert options["entrypoint"] == "/grade/tests/run.sh"
    assert 0 < options["timeout"] <= 600 and options["enableNetworking"] is False
    html = (question / "question.html").read_text()
    assert 'file-names="06_scaled_dot_product_attention.ipynb"' in html
    assert "<pl-external-grader-results>" in html
    assert (question / "tests" / "course" / "tfmcourse" / "checks" / "lesson06.py").is_file()
    assert "torch==2.13.0" in (question / "tests" / "Dockerfile").read_text()


def test_a_question_grades_exactly_one_known_lesson(tmp_path):
    with pytest.raises(ExportError, match="no graded exercises"):
        prairielearn.build(ROOT, 42, tmp_path / "q")


def test_solution_scores_one(question, tmp_path, grader_env):
    results = grade(
        question,
        tmp_path,
        {"06_scaled_dot_product_attention.ipynb": lesson_notebook("solutions", 6)},
        grader_env,
    )
    validate_gradable(results)
    assert results["score"] == 1.0
    assert [t["name"] for t in results["tests"]] == [
        f"6.{i} {n}" for i, n in enumerate((n for n, e in EXERCISES.items() if e.lesson == 6), start=1)
    ]


def test_wrong_answer_loses_its_points_and_names_the_mistake(question, tmp_path, grader_env):
    wrong = with_definition(
        lesson_notebook("solutions", 6), "scaled_dot_product_attention", UNSCALED_SDPA, tmp_path / "w.ipynb"
    )
    results = grade(question, tmp_path, {"06_scaled_dot_product_attention.ipynb": wrong}, grader_env)
    validate_gradable(results)
    tests = {t["name"]: t for t in results["tests"]}
    sdpa = tests["6.3 scaled_dot_product_attention"]
    assert sdpa["points"] == 0 and UNSCALED_MISTAKE in sdpa["message"]
    maximum = sum(t["max_points"] for t in results["tests"])
    assert results["score"] == pytest.approx((maximum - sdpa["max_points"]) / maximum)


def test_unfilled_exercise_scores_zero(question, tmp_path, grader_env):
    results = grade(question, tmp_path, {"any name.ipynb": lesson_notebook("exercises", 6)}, grader_env)
    validate_gradable(results)
    assert results["score"] == 0.0
    assert all(t["points"] == 0 and "NotImplementedError" in t["output"] for t in results["tests"])


def test_unreadable_notebook_is_not_gradable_with_format_errors(question, tmp_path, grader_env):
    results = grade(question, tmp_path, {"06_scaled_dot_product_attention.ipynb": b"\x00garbage"}, grader_env)
    assert results["gradable"] is False
    assert any("could not be read" in e for e in results["format_errors"])
    assert "score" not in results or results["score"] == 0
