"""Notebooks for grading tests, built with nbformat from the implementations in tests/mutants.

Each implementation's source (via inspect) becomes a code cell followed by its
check cell, so the grading tests cover every exercise that exists.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import nbformat

from tests.mutants import load_all
from tfmcourse.checks import EXERCISES
from tfmcourse.grading.secure import extract, grade_notebook, policy

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = load_all()


def standalone(m) -> bool:
    """The implementation is a top-level def/class of its catalogue module (its source stands alone)."""
    return getattr(inspect.getmodule(m.impl), m.impl.__name__, None) is m.impl


def impl_source(func, as_name: str) -> str:
    """Source of ``func`` (plus the module's imports and the helpers it uses), bound to ``as_name``."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(func)))
    top = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    todo, needed = [func.__name__], []
    while todo:
        n = todo.pop()
        if n in needed or n not in top:
            continue
        needed.append(n)
        todo += [x.id for x in ast.walk(top[n]) if isinstance(x, ast.Name)]
    imports = [
        ast.unparse(n)
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
        and not (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tests"))
    ]
    defs = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in needed:
            n.decorator_list = []
            defs.append(ast.unparse(n))
    alias = "" if func.__name__ == as_name else f"\n\n{as_name} = {func.__name__}\n"
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join(defs) + alias


def stub_source(name: str) -> str:
    return f'def {name}(*args, **kwargs):\n    raise NotImplementedError("Exercise: {name}")\n'


def write_notebook(path: Path, codes: dict[str, str], extra_cells: list[str] = (), head: str = "") -> Path:
    """A notebook shaped like the course's: imports, then per exercise a code cell and its check cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# generated for a test"))
    checks = ", ".join(f"check_{n}" for n in codes)
    nb.cells.append(nbformat.v4.new_code_cell(f"import torch\n{head}from tfmcourse.checks import {checks}"))
    for cell in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(cell))
    for name, src in codes.items():
        nb.cells.append(nbformat.v4.new_code_cell(src))
        nb.cells.append(nbformat.v4.new_code_cell(f"check_{name}({name})"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def lesson_names(lesson: int) -> list[str]:
    return [n for n, e in EXERCISES.items() if e.lesson == lesson]


def correct_impls(name: str) -> list:
    """Correct catalogue implementations that secure mode must accept (not using a forbidden built-in)."""
    out = []
    for m in CATALOGUE:
        if m.exercise == name and m.correct and standalone(m):
            src = impl_source(m.impl, name)
            ex = extract.extract([src])
            if not policy.static_violations(ex, name, extract.closure(ex, name)):
                out.append(m)
    return out


def wrong_impls(name: str) -> list:
    return [m for m in CATALOGUE if m.exercise == name and not m.correct and standalone(m)]


LESSONS = sorted({e.lesson for n, e in EXERCISES.items() if correct_impls(n)})


def nb_name(lesson: int, label: str) -> str:
    return f"{lesson:02d}_{label}.ipynb"


def grade(path, **kw):
    kw.setdefault("seed", None)
    kw.setdefault("timeout", 20)
    return grade_notebook(path, **kw)


def by_name(report):
    return {e.name: e for e in report.exercises}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
