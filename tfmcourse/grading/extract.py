"""Reading a notebook for ``tfmcourse grade --secure``: what each exercise's code is, before anything runs.

The notebook is read as JSON, never executed (:func:`read_cells`). With
:mod:`ast`, :func:`extract` keeps only imports, definitions (``def``/``class``,
and simple ``NAME = literal | NAME | lambda``); every other top-level statement
(``torch.allclose = ...``, prints, training loops, check calls) is dropped.
Per exercise, :func:`closure` keeps only what that exercise needs (the
definition and, transitively, the notebook definitions it refers to), and
:func:`static_violations` rejects, before running anything, the use of the
course's reference code (anything imported from ``tfmcourse``, except earlier
lessons' references: :func:`course_policy`) and of the torch built-in the
exercise asks the learner to write (the table :data:`FORBIDDEN`, also enforced
at run time by the worker: :mod:`tfmcourse.grading.sandbox`).
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfmcourse.grading import _child

# ============================================================================ what is forbidden


@dataclass(frozen=True)
class Forbidden:
    """A torch built-in an exercise asks the learner to write themselves.

    With ``kwarg`` (and its positional index ``pos``), only calls that pass a
    non-zero value for it are forbidden, e.g. ``F.cross_entropy(label_smoothing=0.1)``.
    """

    qualname: str
    why: str
    kwarg: str | None = None
    pos: int | None = None

    def wire(self) -> dict:
        return {"qualname": self.qualname, "why": self.why, "kwarg": self.kwarg, "pos": self.pos}


def _ban(why: str, *qualnames: str) -> tuple[Forbidden, ...]:
    return tuple(Forbidden(q, why) for q in qualnames)


_ATTN = ("torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward")
_TRANSFORMER = (
    "torch.nn.Transformer",
    "torch.nn.TransformerEncoder",
    "torch.nn.TransformerDecoder",
    "torch.nn.TransformerEncoderLayer",
    "torch.nn.TransformerDecoderLayer",
)

#: The one table of built-ins each exercise must not use (the exercise *is* writing them).
FORBIDDEN: dict[str, tuple[Forbidden, ...]] = {
    "rnn_cell": _ban(
        "the exercise is to write the RNN step yourself",
        "torch.nn.RNNCell",
        "torch.nn.RNN",
        "torch.rnn_tanh_cell",
        "torch.rnn_tanh",
    ),
    "batch_norm": _ban(
        "the exercise is to compute batch normalisation yourself",
        "torch.nn.functional.batch_norm",
        "torch.batch_norm",
        "torch.native_batch_norm",
        "torch.nn.BatchNorm1d",
        "torch.nn.BatchNorm2d",
        "torch.nn.BatchNorm3d",
    ),
    "layer_norm": _ban(
        "the exercise is to compute layer normalisation yourself",
        "torch.nn.functional.layer_norm",
        "torch.layer_norm",
        "torch.native_layer_norm",
        "torch.nn.LayerNorm",
        "torch.nn.functional.group_norm",
        "torch.nn.GroupNorm",
    ),
    "causal_mask": _ban(
        "the exercise is to build the mask yourself", "torch.nn.Transformer.generate_square_subsequent_mask"
    ),
    "scaled_dot_product_attention": _ban(
        "the exercise is to write attention yourself",
        "torch.nn.functional.scaled_dot_product_attention",
        *_ATTN,
    ),
    "MultiHeadAttention": _ban("the exercise is to write multi-head attention yourself", *_ATTN),
    "FeedForward": _ban("the exercise is to write the layer yourself", *_TRANSFORMER),
    "EncoderLayer": _ban("the exercise is to write the encoder layer yourself", *_TRANSFORMER, *_ATTN),
    "DecoderLayer": _ban("the exercise is to write the decoder layer yourself", *_TRANSFORMER, *_ATTN),
    "label_smoothed_loss": (
        Forbidden(
            "torch.nn.functional.cross_entropy",
            "the exercise is to write label smoothing yourself",
            kwarg="label_smoothing",
            pos=7,
        ),
        Forbidden(
            "torch.nn.CrossEntropyLoss",
            "the exercise is to write label smoothing yourself",
            kwarg="label_smoothing",
            pos=5,
        ),
    ),
    "greedy_decode": (),
}


def forbidden_for(name: str) -> tuple[Forbidden, ...]:
    return FORBIDDEN.get(name, ())


# ============================================================================ reading notebooks


class NotebookError(Exception):
    """The file cannot be graded at all (not a notebook, broken JSON, …)."""


def read_cells(path: str | os.PathLike) -> list[str]:
    """The code cells' sources of a notebook, read as plain JSON (the file is only read)."""
    p = Path(path)
    if p.suffix != ".ipynb":
        raise NotebookError(f"not a notebook (expected a .ipynb file, got {p.name!r})")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise NotebookError(f"cannot read the file: {exc.strerror or exc}") from None
    if not raw.strip():
        raise NotebookError("the file is empty")
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotebookError(f"not valid notebook JSON ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("not a Jupyter notebook (no list of cells)")
    cells = []
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if isinstance(src, str):
            cells.append(src)
    return cells


_MAGIC = re.compile(r"^\s*[%!]")


_PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%python")


def _strip_magics(src: str) -> str | None:
    if src.lstrip().startswith("%%"):
        first, _, rest = src.lstrip().partition("\n")
        if first.split()[0] in _PYTHON_CELL_MAGICS:
            return "\n" + _strip_magics(rest) if _strip_magics(rest) is not None else None
        return None  # another cell magic (%%bash, %%html, …): the cell is not Python
    return "\n".join("" if _MAGIC.match(line) else line for line in src.split("\n"))


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


def _is_course(module: str | None) -> bool:
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
        src = _strip_magics(raw)
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
                        if _is_course(a.name):
                            course = True
                            ex.course_names[bound] = a.name
                        else:
                            ex.aliases[bound] = path
                    else:
                        if a.name == "*":
                            continue
                        bound = a.asname or a.name
                        if _is_course(module):
                            course = True
                            ex.course_names[bound] = f"{module}.{a.name}"
                        else:
                            ex.aliases[bound] = f"{module}.{a.name}"
                if course:
                    if isinstance(node, ast.Import) and not all(_is_course(a.name) for a in node.names):
                        node = ast.copy_location(
                            ast.Import(names=[a for a in node.names if not _is_course(a.name)]), node
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


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _resolve(path: str) -> Any:
    if path != "torch" and not path.startswith("torch."):
        return None
    try:
        return _child._resolve(path)
    except Exception:
        return None


def _nonzero_literal(node: ast.expr) -> bool:
    try:
        return ast.literal_eval(node) not in (None, 0, 0.0, False)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return True


def course_policy(name: str) -> tuple[set[str], list[str]]:
    """What of ``tfmcourse`` exercise ``name`` may use: the reference implementations of
    exercises from *earlier* lessons (e.g. ``tfmcourse.attention.MultiHeadAttention``
    inside lesson 8's ``EncoderLayer``). Returns (allowed dotted paths, banned dotted
    paths: the references of this lesson and of later ones)."""
    from tfmcourse.checks import EXERCISES

    lesson = EXERCISES[name].lesson if name in EXERCISES else 0
    allowed, banned = set(), []
    for e in EXERCISES.values():
        if e.reference:
            (allowed.add if e.lesson < lesson else banned.append)(e.reference.replace(":", "."))
    return allowed, banned


def _course_chains(ex: Extracted, units: list[Unit]) -> list[tuple[str, str]]:
    """(root name, full dotted path) of every maximal name/attribute chain rooted at a tfmcourse import."""
    defined = set(ex.defs)
    out = []
    for unit in units:
        inner = set()
        for node in ast.walk(unit.node):
            if isinstance(node, ast.Attribute):
                inner.add(id(node.value))
        for node in ast.walk(unit.node):
            if id(node) in inner or not isinstance(node, (ast.Name, ast.Attribute)):
                continue
            parts = _dotted(node)
            if parts and parts[0] in ex.course_names and parts[0] not in defined:
                out.append((parts[0], ".".join([ex.course_names[parts[0]]] + parts[1:])))
    return out


def course_bindings(ex: Extracted, name: str, units: list[Unit]) -> dict[str, str]:
    """The tfmcourse names the exercise may use (earlier lessons' references) -> their dotted path."""
    allowed, _ = course_policy(name)
    return {
        root: ex.course_names[root]
        for root, path in _course_chains(ex, units)
        if any(path == a or path.startswith(a + ".") for a in allowed)
    }


def static_violations(ex: Extracted, name: str, units: list[Unit]) -> list[str]:
    """Why ``name`` is rejected before running: use of the course's code or of a forbidden built-in."""
    problems: list[str] = []
    defined = set(ex.defs)
    banned = [(f, _resolve(f.qualname)) for f in forbidden_for(name)]
    last_names = {f.qualname.rsplit(".", 1)[-1] for f, _ in banned}  # resolve only plausible paths
    allowed, _ = course_policy(name)
    for _root, path in _course_chains(ex, units):
        if not any(path == a or path.startswith(a + ".") for a in allowed):
            problems.append(
                f"uses {path} from the course package tfmcourse (the reference implementation); "
                "write it yourself"
            )
    for unit in units:
        for node in ast.walk(unit.node):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(_is_course(m) for m in mods):
                    problems.append("imports the course package tfmcourse inside its code (not allowed)")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "tfmcourse" in node.value:
                problems.append("refers to the course package tfmcourse by name")
            elif isinstance(node, (ast.Attribute, ast.Name)) and banned:
                parts = _dotted(node)
                if (
                    not parts
                    or parts[0] not in ex.aliases
                    or parts[0] in defined
                    or parts[-1] not in last_names
                ):
                    continue
                path = ".".join([ex.aliases[parts[0]]] + parts[1:])
                obj = _resolve(path)
                for f, target in banned:
                    if f.kwarg is not None:
                        continue
                    if path == f.qualname or (target is not None and obj is target):
                        problems.append(f"uses {f.qualname}: {f.why}")
            if isinstance(node, ast.Call) and banned:
                parts = _dotted(node.func)
                if (
                    not parts
                    or parts[0] not in ex.aliases
                    or parts[0] in defined
                    or parts[-1] not in last_names
                ):
                    continue
                path = ".".join([ex.aliases[parts[0]]] + parts[1:])
                obj = _resolve(path)
                for f, target in banned:
                    if f.kwarg is None or not (path == f.qualname or (target is not None and obj is target)):
                        continue
                    kw = [k for k in node.keywords if k.arg == f.kwarg]
                    if (kw and _nonzero_literal(kw[0].value)) or (
                        f.pos is not None and len(node.args) > f.pos
                    ):
                        problems.append(f"uses {f.qualname}({f.kwarg}=...): {f.why}")
    return list(dict.fromkeys(problems))
