"""The Gradescope autograder, run locally end to end: build the zip, unpack it as Gradescope does,
place a submission, run ``run_autograder`` and validate ``results.json``."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import zipfile
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
from tfmcourse.export import gradescope
from tfmcourse.export.bundle import ExportError

# Gradescope's documented results.json fields (autograder specifications).
TOP_LEVEL = {
    "score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
    "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard",
}  # fmt: skip
TEST_FIELDS = {
    "score", "max_score", "status", "name", "name_format", "number", "output", "output_format",
    "tags", "visibility", "extra_data",
}  # fmt: skip
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def validate(results: dict) -> None:
    """Fail on anything Gradescope's format does not allow, and on an inconsistent score."""
    assert set(results) <= TOP_LEVEL, set(results) - TOP_LEVEL
    assert isinstance(results["score"], float)
    assert results.get("visibility", "visible") in VISIBILITY
    assert results.get("stdout_visibility", "hidden") in VISIBILITY
    for t in results["tests"]:
        assert set(t) <= TEST_FIELDS, set(t) - TEST_FIELDS
        assert t["status"] in ("passed", "failed")
        assert 0 <= t["score"] <= t["max_score"]
        assert (t["status"] == "passed") == (t["score"] == t["max_score"])
        assert isinstance(t["output"], str) and t["output"]
    assert results["score"] == sum(t["score"] for t in results["tests"])


def autograde(
    zip_path: Path, tmp: Path, submission: dict[str, Path | bytes], env: dict, *, status: int = 0, patch=None
) -> dict:
    """Unpack like Gradescope (``source/``, ``run_autograder`` at the root) and run one submission."""
    root = tmp / "autograder"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    if patch:
        patch(root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)  # zipfile does not restore modes
    place_upload(submission, root / "submission")
    proc = subprocess.run(
        [str(root / "run_autograder")],
        env={**env, "AUTOGRADER_ROOT": str(root)},
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == status, proc.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    validate(results)
    return results


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    return gradescope.build(ROOT, [6, 3], tmp_path_factory.mktemp("export") / "autograder.zip")


def by_name(results: dict) -> dict[str, dict]:
    return {t["name"]: t for t in results["tests"]}


def test_zip_has_the_scripts_at_its_root_executable_and_is_reproducible(autograder_zip, tmp_path):
    with zipfile.ZipFile(autograder_zip) as z:
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        setup = z.read("setup.sh").decode()
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & stat.S_IXUSR, f"{script} must be executable"
    assert "tfmcourse/checks/lesson06.py" in modes and "constraints.txt" in modes
    assert not any("__pycache__" in n for n in modes)
    assert "torch==2.13.0" in setup and "download.pytorch.org/whl/cpu" in setup
    assert '-c "$SOURCE/constraints.txt"' in setup
    for script in ("setup.sh", "run_autograder"):  # shell syntax only: setup.sh installs, so never run here
        with zipfile.ZipFile(autograder_zip) as z:
            check = subprocess.run(["bash", "-n"], input=z.read(script), capture_output=True)
        assert check.returncode == 0, check.stderr
    again = gradescope.build(ROOT, [3, 6], tmp_path / "again.zip")
    assert again.read_bytes() == autograder_zip.read_bytes()


def test_unknown_lesson_is_refused_naming_the_graded_ones(tmp_path):
    with pytest.raises(ExportError, match="graded lessons: 1, 2, 3"):
        gradescope.build(ROOT, [0], tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists()


def test_solutions_score_full_marks(autograder_zip, tmp_path, grader_env):
    results = autograde(
        autograder_zip,
        tmp_path,
        {p.name: p for p in (lesson_notebook("solutions", 3), lesson_notebook("solutions", 6))},
        grader_env,
    )
    expected = [n for n, e in EXERCISES.items() if e.lesson in (3, 6)]
    assert [t["name"].split(" ", 1)[1] for t in results["tests"]] == expected
    assert by_name(results)["6.3 scaled_dot_product_attention"]["max_score"] == 2
    assert all(t["status"] == "passed" for t in results["tests"])
    assert results["score"] == sum(EXERCISES[n].points for n in expected) > 0
    seed = results["extra_data"]["seed"]
    assert isinstance(seed, int) and seed != 0
    assert str(seed) not in results["output"] + "".join(t["output"] for t in results["tests"])


def test_unreadable_unfilled_and_wrong_notebooks_score_zero_with_the_reason(
    autograder_zip, tmp_path, grader_env
):
    wrong = with_definition(
        lesson_notebook("exercises", 6), "scaled_dot_product_attention", UNSCALED_SDPA, tmp_path / "w.ipynb"
    )
    results = autograde(
        autograder_zip,
        tmp_path,
        {"03_layernorm_vs_batchnorm.ipynb": b"{ this is not a notebook", "06_attention (1).ipynb": wrong},
        grader_env,
    )
    tests = by_name(results)
    assert results["score"] == 0.0
    assert "03_layernorm_vs_batchnorm.ipynb could not be read" in results["output"]
    for name in ("3.1 batch_norm", "3.2 layer_norm"):
        assert tests[name]["score"] == 0 and "could not be read" in tests[name]["output"]
    sdpa = tests["6.3 scaled_dot_product_attention"]
    assert sdpa["status"] == "failed" and sdpa["score"] == 0
    assert UNSCALED_MISTAKE in sdpa["output"]
    for name in ("6.1 causal_mask", "6.2 padding_mask"):  # left as the exercise's stub
        assert tests[name]["score"] == 0 and tests[name]["output"].startswith("not attempted")


def test_a_missing_lesson_scores_zero_and_says_which_file_was_expected(tmp_path, grader_env):
    zip_path = gradescope.build(ROOT, [6], tmp_path / "only6.zip")
    upload = {"notes.txt": b"hello", "r\udce9sum\udce9.pdf": b"%PDF"}  # a Latin-1 file name: not UTF-8
    results = autograde(zip_path, tmp_path, upload, grader_env)
    assert results["score"] == 0.0
    assert "no notebook graded (expected 06_scaled_dot_product_attention.ipynb)" in results["output"]
    assert "ignored (not notebooks): notes.txt, r\ufffdsum\ufffd.pdf" in results["output"]
    assert all(t["status"] == "failed" for t in results["tests"])


def test_a_broken_grader_still_writes_results_that_blame_the_grader(autograder_zip, tmp_path, grader_env):
    def break_the_cli(source: Path) -> None:
        (source / "tfmcourse" / "__main__.py").write_text("raise SystemExit(3)\n")

    solution = lesson_notebook("solutions", 6)
    results = autograde(
        autograder_zip, tmp_path, {solution.name: solution}, grader_env, status=1, patch=break_the_cli
    )
    assert results["score"] == 0.0 and results["tests"] == []
    assert "a problem with the grader, not with your notebook" in results["output"]
    assert "exited with status 3" in results["extra_data"]["grader_error"]
