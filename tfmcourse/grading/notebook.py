"""Reading a learner's notebook: the one reader of the grading package, and what it is graded on.

The file is only ever read. :func:`read` turns every way a file can fail to be
a notebook into :class:`NotebookError` with a reason a learner can act on.
A notebook is graded on the exercises of its lesson (from its name,
``NN_title.ipynb``: :func:`lesson_of`) and on every exercise it calls a check
of (a line ``check_<name>(…)``: :func:`check_calls`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat

from tfmcourse import nbtools

LESSON_PREFIX = re.compile(r"^(\d{2})_")
CHECK_CALL = re.compile(r"^\s*check_(\w+)\s*\(", re.MULTILINE)
MAX_BYTES = 64 << 20  # a notebook larger than this is not graded


class NotebookError(Exception):
    """The file cannot be graded at all (missing, not a notebook, broken JSON, …)."""


def read(path: str | os.PathLike) -> nbformat.NotebookNode:
    """The notebook at ``path``, or :class:`NotebookError` saying why it cannot be read."""
    p = Path(path)
    if p.suffix != ".ipynb":
        raise NotebookError(f"not a notebook (expected a .ipynb file, got {p.name!r})")
    try:
        if not p.is_file():
            raise NotebookError("no such file")
        if p.stat().st_size > MAX_BYTES:
            raise NotebookError(f"the file is larger than {MAX_BYTES >> 20} MiB")
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise NotebookError(f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NotebookError("not valid notebook JSON (not UTF-8 text)") from None
    if not text.strip():
        raise NotebookError("the file is empty")
    try:
        return nbtools.reads(text)
    except nbformat.reader.NotJSONError:
        raise NotebookError("not valid notebook JSON") from None
    except (ValueError, RecursionError) as exc:
        raise NotebookError(f"not valid notebook JSON ({type(exc).__name__}: {str(exc)[:120]})") from None
    except Exception as exc:  # nbformat's own errors: a JSON document that is not a notebook
        raise NotebookError(f"not a Jupyter notebook ({type(exc).__name__}: {str(exc)[:120]})") from None


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    """The sources of the code cells, in order."""
    return [c.source for c in nb.cells if c.cell_type == "code"]


def lesson_of(path: str | os.PathLike) -> int | None:
    """The lesson a notebook belongs to, from its name (``06_attention.ipynb`` → 6)."""
    m = LESSON_PREFIX.match(Path(path).name)
    return int(m.group(1)) if m else None


def check_calls(source: str) -> list[str]:
    """The exercises whose check a cell calls (``check_<name>(`` at the start of a line)."""
    return CHECK_CALL.findall(source)


def graded_exercises(path: str | os.PathLike, sources: list[str]) -> list[str]:
    """The exercises a notebook is graded on, in the course's order."""
    from tfmcourse.checks import EXERCISES

    lesson = lesson_of(path)
    names = {n for src in sources for n in check_calls(src)}
    return [n for n, e in EXERCISES.items() if e.lesson == lesson or n in names]
