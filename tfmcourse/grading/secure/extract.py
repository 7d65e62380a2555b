"""What each exercise's code is, before anything runs: the notebook's definitions, kept with :mod:`ast`.

:func:`extract` keeps only imports and definitions (``def``/``class``, and
simple ``NAME = literal | NAME | lambda``) of every code cell; every other
top-level statement (``torch.allclose = ...``, prints, training loops, check
calls) is dropped and never runs. :func:`closure` keeps, per exercise, only the
definitions it needs (its own and, transitively, those it refers to).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

_MAGIC = re.compile(r"^\s*[%!]")


_PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%python")


def strip_magics(src: str) -> str | None:
    """The cell as Python: IPython magic lines blanked (line numbers kept), or None if it is not Python.

    One pass over the lines: the cell magics at the top (``%%time``, …) must all run Python.
    """
    lines = src.split("\n")
    for line in lines:
        word = line.strip()
        if not word:
            continue
        if not word.startswith("%%"):
            break
        if word.split()[0] not in _PYTHON_CELL_MAGICS:
            return None  # another cell magic (%%bash, %%html, …): the cell is not Python
    return "\n".join("" if _MAGIC.match(line) else line for line in lines)


@dataclass
class Unit:
    """One kept top-level statement: its source (padded to keep line numbers) and what it defines."""

    cell: int
    order: int
    node: ast.stmt
    source: str
    defines: tuple[str, ...]
    is_import: bool = False


@dataclass
class Extracted:
    units: list[Unit] = field(default_factory=list)
    defs: dict[str, list[Unit]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # name -> dotted path it was imported as
    course_names: dict[str, str] = field(default_factory=dict)  # name -> tfmcourse path (import dropped)
    broken: list[tuple[int, str, set[str]]] = field(default_factory=list)  # (cell, error, names it defines)
    cells: dict[int, str] = field(default_factory=dict)  # cell index -> source (for line numbers in messages)
    check_calls: list[str] = field(default_factory=list)

    @property
    def imports(self) -> list[Unit]:
        return [u for u in self.units if u.is_import]


def is_course(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] == "tfmcourse"


def _simple_value(node: ast.expr) -> bool:
    if isinstance(node, (ast.Name, ast.Lambda)):
        return True
    if isinstance(node, ast.Attribute):
        return _simple_value(node.value) if not isinstance(node.value, ast.Name) else True
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def extract(cells: list[str]) -> Extracted:
    """Keep imports and definitions of every code cell; drop every other top-level statement."""
    ex = Extracted()
    order = 0
    for ci, raw in enumerate(cells):
        src = strip_magics(raw)
        if src is None:
            continue
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            names = set(re.findall(r"^(?:def|class)\s+([A-Za-z_]\w*)", src, flags=re.M))
            ex.broken.append(
                (
                    ci,
                    f"{type(exc).__name__}: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', '?')})",
                    names,
                )
            )
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id.startswith("check_")
            ):
                ex.check_calls.append(node.func.id[len("check_") :])
        lines = src.split("\n")
        ex.cells[ci] = src
        for node in tree.body:
            defines: tuple[str, ...] = ()
            is_import = rebuilt = False
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if isinstance(node, ast.ImportFrom) and node.level:
                    continue
                course = False
                for a in node.names:
                    if isinstance(node, ast.Import):
                        bound = a.asname or a.name.split(".")[0]
                        path = a.name if a.asname else a.name.split(".")[0]
                        if is_course(a.name):
                            course = True
                            ex.course_names[bound] = a.name
                        else:
                            ex.aliases[bound] = path
                    else:
                        if a.name == "*":
                            continue
                        bound = a.asname or a.name
                        if is_course(module):
                            course = True
                            ex.course_names[bound] = f"{module}.{a.name}"
                        else:
                            ex.aliases[bound] = f"{module}.{a.name}"
                if course:
                    if isinstance(node, ast.Import) and not all(is_course(a.name) for a in node.names):
                        node = ast.copy_location(
                            ast.Import(names=[a for a in node.names if not is_course(a.name)]), node
                        )
                        rebuilt = True
                    else:
                        continue  # the course package is never imported by learner code in secure mode
                is_import = True
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defines = (node.name,)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if (
                    node.value is None
                    or not all(isinstance(t, ast.Name) for t in targets)
                    or not _simple_value(node.value)
                ):
                    continue
                defines = tuple(t.id for t in targets)
            else:
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            if rebuilt:  # the same import without its tfmcourse part
                body = ast.unparse(node)
            else:
                body = "\n".join(lines[first - 1 : node.end_lineno])
            unit = Unit(ci, order, node, "\n" * (first - 1) + body + "\n", defines, is_import)
            order += 1
            ex.units.append(unit)
            for name in defines:
                ex.defs.setdefault(name, []).append(unit)
    return ex


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def closure(ex: Extracted, name: str) -> list[Unit]:
    """The definitions ``name`` needs: its own and, transitively, those it refers to."""
    todo, seen, out = [name], set(), []
    while todo:
        n = todo.pop()
        if n in seen or n not in ex.defs:
            continue
        seen.add(n)
        for unit in ex.defs[n]:
            if unit not in out:
                out.append(unit)
                todo.extend(_names_in(unit.node) - seen)
    return sorted(out, key=lambda u: u.order)
