"""Lesson 00: its demonstration shows what a learner really gets, its map matches the course outline."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from tfmcourse import nbtools
from tfmcourse.checks import EXERCISES, hints
from tfmcourse.course import LESSONS


@pytest.fixture(scope="module")
def lesson(root):
    return nbtools.read(root / "notebooks" / "00_start_here.ipynb")


def _saved_text(cell) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"] + "\n")
    return "".join(parts)


def test_the_demonstration_cells_show_what_the_checks_print_today(lesson, monkeypatch):
    """Run the check, hint and ✓ cells again and compare with the saved outputs a learner reads."""
    monkeypatch.setattr(hints, "_shown", {})
    demo = [
        c
        for c in lesson.cells
        if c.cell_type == "code" and re.search(r"check_causal_mask\(|hint\(", c.source)
    ]
    assert len(demo) == 3, "the failure, the hint and the ✓"
    namespace: dict = {}
    for cell in demo:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(cell.source, "<lesson 00>", "exec"), namespace)
        assert out.getvalue() == _saved_text(cell), f"re-run lesson 00: this cell now shows\n{out.getvalue()}"
    failure, hint, success = (_saved_text(c) for c in demo)
    assert "✗ Exercise 6.1 · causal_mask" in failure and "the diagonal is blocked too" in failure
    assert "Traceback" not in failure and "tfmcourse/checks" not in failure
    assert hint.startswith("Hint 1/3 for causal_mask")
    assert success.startswith("✓ causal_mask: correct")


def test_no_test_markers_are_visible_to_learners(lesson):
    assert not [c.source for c in lesson.cells if "NBVAL" in c.source]


def test_the_environment_self_check_runs_before_anything_imports_torch_or_the_course(lesson):
    code = [c.source for c in lesson.cells if c.cell_type == "code"]
    first = code[0]
    assert "environment looks right" in first
    before_torch = first.split("import torch", 1)[0]
    assert "metadata.version" in before_torch and "tfmcourse" not in before_torch.replace('"tfmcourse"', "")


def test_the_course_map_lists_every_lesson_with_its_study_time_and_exercises(lesson):
    text = "\n".join(c.source for c in lesson.cells if c.cell_type == "markdown")
    for item in LESSONS:
        row = next((line for line in text.splitlines() if line.startswith(f"| {item.number:02d} |")), None)
        assert row is not None, f"lesson {item.number:02d} is missing from the map"
        assert f"]({item.notebook})" in row and f"~{item.minutes} min" in row
        for name, ex in EXERCISES.items():
            if ex.lesson == item.number:
                assert f"`{name}`" in row and f"(../exercises/{item.notebook})" in row
    assert "](10_gpt.ipynb)" in text and "](11_fast_inference.ipynb)" in text


def test_the_progress_cell_uses_the_progress_module(lesson):
    assert any("tfmcourse.progress" in c.source for c in lesson.cells if c.cell_type == "code")


def test_the_course_maps_total_time_is_the_sum_of_the_lessons(lesson):
    text = "\n".join(c.source for c in lesson.cells if c.cell_type == "markdown")
    hours = round(sum(item.minutes for item in LESSONS) / 60)
    assert f"In all about {hours} hours." in text
