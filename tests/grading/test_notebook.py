"""The grading package's one notebook reader, the lesson of a file and its check calls."""

from __future__ import annotations

import nbformat
import pytest

from tfmcourse.checks import EXERCISES
from tfmcourse.grading import notebook


@pytest.mark.parametrize(
    "name,content,expect",
    [
        ("06_a.ipynb", b"", "the file is empty"),
        ("06_a.ipynb", b"{not json", "not valid notebook JSON"),
        ("06_a.ipynb", b"\xff\xfe{}", "not UTF-8"),
        ("06_a.ipynb", b'{"cells": 3}', "not a Jupyter notebook"),
        ("06_a.ipynb", b"[1, 2]", "not a Jupyter notebook"),
        ("06_a.txt", b"{}", "not a notebook (expected a .ipynb file"),
    ],
)
def test_every_unreadable_file_gives_a_reason(tmp_path, name, content, expect):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(notebook.NotebookError, match=expect.replace("(", r"\(")):
        notebook.read(p)


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(notebook.NotebookError, match="no such file"):
        notebook.read(tmp_path / "06_gone.ipynb")


def test_code_cells_and_check_calls(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("check_causal_mask(causal_mask) in prose"),
        nbformat.v4.new_code_cell("def check_causal_mask(f):\n    pass"),
        nbformat.v4.new_code_cell("x = 1\ncheck_padding_mask(padding_mask)"),
    ]
    p = tmp_path / "07_x.ipynb"
    nbformat.write(nb, str(p))
    sources = notebook.code_cells(notebook.read(p))
    assert len(sources) == 2
    assert [notebook.check_calls(s) for s in sources] == [[], ["padding_mask"]]
    lesson7 = [n for n, e in EXERCISES.items() if e.lesson == 7]
    assert notebook.graded_exercises(p, sources) == [
        n for n in EXERCISES if n in lesson7 or n == "padding_mask"
    ]


@pytest.mark.parametrize(
    "name,lesson", [("06_attention.ipynb", 6), ("6_x.ipynb", None), ("x_06.ipynb", None)]
)
def test_lesson_of_a_file_is_its_two_digit_prefix(name, lesson):
    assert notebook.lesson_of(name) == lesson
