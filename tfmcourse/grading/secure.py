"""``tfmcourse grade --secure``: grade learner code out of process, on hidden inputs.

What happens to a notebook (see ``docs/instructors.md`` for the threat model):

1. The trusted parent (this module) reads the notebook as JSON and keeps, with
   :mod:`ast`, only imports, definitions (``def``/``class``, and simple
   ``NAME = literal | NAME | lambda``); every other top-level statement
   (``torch.allclose = ...``, prints, training loops, check calls) is dropped.
2. Per exercise it keeps only what that exercise needs (the definition and,
   transitively, the notebook definitions it refers to, plus the imports) and
   rejects, before running anything, the use of the course's reference code
   (anything imported from ``tfmcourse``) and of the torch built-in the
   exercise asks the learner to write (:data:`FORBIDDEN`).
3. The code runs in a worker process forked from a clean ``python -I -S``
   interpreter (:mod:`tfmcourse.grading._child`) that cannot import
   ``tfmcourse``, with its own session, temporary directory and limits
   (address space, CPU seconds, file size) and a wall-clock deadline after
   which its process group is killed. Import hooks and traps on the forbidden
   built-ins report their use at run time too.
4. The parent runs the registered check, ``EXERCISES[name].check(proxy,
   seed=<hidden seed>)``. ``proxy`` forwards every call to the worker through
   a pipe carrying JSON and raw tensor bytes (never pickle); results come back
   as plain ``torch.Tensor`` data, so monkeypatching, tensor subclasses or a
   replaced check in the notebook have no effect on the comparison.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from tfmcourse.grading import _child
from tfmcourse.grading.report import ExerciseResult, NotebookReport

DEFAULT_TIMEOUT = 20.0   # seconds per exercise (defining it + every call the check makes)
DEFAULT_MEMORY = 2048    # MiB of address space per exercise (torch alone maps ~650 MiB)
STARTUP_TIMEOUT = 180.0  # seconds for the clean interpreter to import torch (once per worker)


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
_TRANSFORMER = ("torch.nn.Transformer", "torch.nn.TransformerEncoder", "torch.nn.TransformerDecoder",
                "torch.nn.TransformerEncoderLayer", "torch.nn.TransformerDecoderLayer")

#: The one table of built-ins each exercise must not use (the exercise *is* writing them).
FORBIDDEN: dict[str, tuple[Forbidden, ...]] = {
    "rnn_cell": _ban("the exercise is to write the RNN step yourself",
                     "torch.nn.RNNCell", "torch.nn.RNN", "torch.rnn_tanh_cell", "torch.rnn_tanh"),
    "batch_norm": _ban("the exercise is to compute batch normalisation yourself",
                       "torch.nn.functional.batch_norm", "torch.batch_norm", "torch.native_batch_norm",
                       "torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d"),
    "layer_norm": _ban("the exercise is to compute layer normalisation yourself",
                       "torch.nn.functional.layer_norm", "torch.layer_norm", "torch.native_layer_norm",
                       "torch.nn.LayerNorm", "torch.nn.functional.group_norm", "torch.nn.GroupNorm"),
    "causal_mask": _ban("the exercise is to build the mask yourself",
                        "torch.nn.Transformer.generate_square_subsequent_mask"),
    "scaled_dot_product_attention": _ban(
        "the exercise is to write attention yourself",
        "torch.nn.functional.scaled_dot_product_attention", *_ATTN),
    "MultiHeadAttention": _ban("the exercise is to write multi-head attention yourself", *_ATTN),
    "FeedForward": _ban("the exercise is to write the layer yourself", *_TRANSFORMER),
    "EncoderLayer": _ban("the exercise is to write the encoder layer yourself", *_TRANSFORMER, *_ATTN),
    "DecoderLayer": _ban("the exercise is to write the decoder layer yourself", *_TRANSFORMER, *_ATTN),
    "label_smoothed_loss": (
        Forbidden("torch.nn.functional.cross_entropy", "the exercise is to write label smoothing yourself",
                  kwarg="label_smoothing", pos=7),
        Forbidden("torch.nn.CrossEntropyLoss", "the exercise is to write label smoothing yourself",
                  kwarg="label_smoothing", pos=5),
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
    aliases: dict[str, str] = field(default_factory=dict)      # name -> dotted path it was imported as
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
            ex.broken.append((ci, f"{type(exc).__name__}: {getattr(exc, 'msg', exc)} (line "
                                  f"{getattr(exc, 'lineno', '?')})", names))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_"):
                ex.check_calls.append(node.func.id[len("check_"):])
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
                            ast.Import(names=[a for a in node.names if not _is_course(a.name)]), node)
                        rebuilt = True
                    else:
                        continue  # the course package is never imported by learner code in secure mode
                is_import = True
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defines = (node.name,)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if node.value is None or not all(isinstance(t, ast.Name) for t in targets) \
                        or not _simple_value(node.value):
                    continue
                defines = tuple(t.id for t in targets)
            else:
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            if rebuilt:  # the same import without its tfmcourse part
                body = ast.unparse(node)
            else:
                body = "\n".join(lines[first - 1: node.end_lineno])
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
    except Exception:  # noqa: BLE001
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
    return {root: ex.course_names[root] for root, path in _course_chains(ex, units)
            if any(path == a or path.startswith(a + ".") for a in allowed)}


def static_violations(ex: Extracted, name: str, units: list[Unit]) -> list[str]:
    """Why ``name`` is rejected before running: use of the course's code or of a forbidden built-in."""
    problems: list[str] = []
    defined = set(ex.defs)
    banned = [(f, _resolve(f.qualname)) for f in forbidden_for(name)]
    last_names = {f.qualname.rsplit(".", 1)[-1] for f, _ in banned}  # resolve only plausible paths
    allowed, _ = course_policy(name)
    for _root, path in _course_chains(ex, units):
        if not any(path == a or path.startswith(a + ".") for a in allowed):
            problems.append(f"uses {path} from the course package tfmcourse (the reference implementation); "
                            "write it yourself")
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
                if not parts or parts[0] not in ex.aliases or parts[0] in defined or parts[-1] not in last_names:
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
                if not parts or parts[0] not in ex.aliases or parts[0] in defined or parts[-1] not in last_names:
                    continue
                path = ".".join([ex.aliases[parts[0]]] + parts[1:])
                obj = _resolve(path)
                for f, target in banned:
                    if f.kwarg is None or not (path == f.qualname or (target is not None and obj is target)):
                        continue
                    kw = [k for k in node.keywords if k.arg == f.kwarg]
                    if (kw and _nonzero_literal(kw[0].value)) or (f.pos is not None and len(node.args) > f.pos):
                        problems.append(f"uses {f.qualname}({f.kwarg}=...): {f.why}")
    return list(dict.fromkeys(problems))


# ============================================================================ the sandbox


#: What learner code may call on a trusted object a check passes in (e.g. greedy_decode's model).
CALLBACK_METHODS = frozenset({"__call__", "forward", "encode", "decode", "eval", "parameters",
                              "named_parameters"})


class GradingAborted(BaseException):
    """Grading of one exercise stops here (limit hit, process died, forbidden use).

    A ``BaseException`` so that no ``except Exception`` in a check can swallow it.
    """

    def __init__(self, reason: str, status: str = "failed", message: str = ""):
        super().__init__(reason)
        self.reason, self.status, self.message = reason, status, message


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(p for p in (paths.get("purelib"), paths.get("platlib")) if p))


class Sandbox:
    """A clean ``python -I -S`` interpreter with torch imported; forks one worker per exercise."""

    def __init__(self, memory_mb: int = DEFAULT_MEMORY):
        self.memory_mb = memory_mb
        self.proc: subprocess.Popen | None = None
        self.root = Path(tempfile.mkdtemp(prefix="tfmcourse-secure-"))
        self.fd_to = self.fd_from = -1
        self.count = 0

    # -- lifecycle
    def start(self) -> None:
        r_child, w_parent = os.pipe()
        r_parent, w_child = os.pipe()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "TMPDIR": str(self.root)}
        self.log = open(self.root / "child.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", _child.__file__, str(r_child), str(w_child), *_site_dirs()],
                pass_fds=(r_child, w_child), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                cwd=self.root, env=env, start_new_session=True, close_fds=True)
        finally:
            os.close(r_child)
            os.close(w_child)
        self.fd_to, self.fd_from = w_parent, r_parent
        msg, _ = _child.recv(self.fd_from, time.monotonic() + STARTUP_TIMEOUT)
        if msg.get("op") != "hello":
            raise RuntimeError("the sandbox did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        for fd in (self.fd_to, self.fd_from):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd_to = self.fd_from = -1
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
            self.proc = None
        with contextlib.suppress(Exception):
            self.log.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def ensure(self) -> None:
        if not self.alive():
            self.stop()
            self.start()

    # -- one exercise
    def open(self, name: str, units: list[Unit], imports: list[Unit], timeout: float,
             cells: dict[int, str] | None = None, bind: dict[str, str] | None = None) -> "Session":
        self.ensure()
        self.count += 1
        workdir = self.root / f"ex{self.count}"
        kept = sorted(imports + units, key=lambda u: u.order)
        chunks = [[f"<cell {u.cell + 1}>", u.source] for u in kept]
        lines = {f"<cell {c + 1}>": (cells or {}).get(c, "") for c in {u.cell for u in kept}}
        import tfmcourse

        msg = {"op": "fork", "exercise": name, "chunks": chunks, "lines": lines,
               "bind": bind or {}, "prune": course_policy(name)[1],
               "course_root": str(Path(tfmcourse.__file__).resolve().parent.parent),
               "forbidden": [f.wire() for f in forbidden_for(name)],
               "memory_mb": self.memory_mb, "cpu_seconds": int(math.ceil(timeout)) + 1,
               "workdir": str(workdir)}
        session = Session(self, name, timeout, workdir)
        _child.send(self.fd_to, msg)
        reply, _ = session.recv()
        if reply.get("op") == "exited":
            raise session._died(reply)
        if reply.get("op") != "forked":
            session.broken = True
            raise GradingAborted(f"the grading sandbox did not answer ({str(reply)[:200]})", status="error")
        session.pid = int(reply["pid"])
        return session


class Session:
    """The conversation with one exercise's worker process."""

    def __init__(self, sandbox: Sandbox, name: str, timeout: float, workdir: Path):
        self.sandbox, self.name, self.timeout = sandbox, name, timeout
        # wall-clock seconds the learner's process may still take; only time spent waiting for it
        # counts (the trusted check's own work in this process does not)
        self.budget = timeout
        self.workdir = workdir
        self.pid = 0
        self.broken = False
        self.finished = False
        self.remote: dict[int, Any] = {}
        self.max_bytes = max(64, sandbox.memory_mb) << 20

    def _kill(self) -> None:
        """Kill the worker's process group, once. Only while the zygote has not yet reported the
        worker's exit: until then the worker is alive or an unreaped zombie, so its pid (= its
        process group id, after setsid) cannot belong to anyone else."""
        pid, self.pid = self.pid, 0
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def recv(self) -> tuple[dict, list[bytes]]:
        try:
            start = time.monotonic()
            try:
                return _child.recv(self.sandbox.fd_from, start + self.budget, self.max_bytes)
            finally:
                self.budget -= time.monotonic() - start
        except TimeoutError:
            self.broken = True
            self._kill()
            raise GradingAborted(f"time limit exceeded: the exercise used more than {self.timeout:g} s "
                                 "(an infinite loop, or far too slow)") from None
        except (EOFError, OSError, _child.ProtocolError, struct.error) as exc:
            self.broken = True
            self._kill()
            raise GradingAborted(f"the learner's process broke the grading channel ({type(exc).__name__})") from None

    def _died(self, reply: dict) -> GradingAborted:
        self.finished = True
        self.pid = 0  # reaped by the zygote: never signal that pid again
        sig = reply.get("signal")
        if sig == signal.SIGXCPU:
            why = f"CPU time limit exceeded ({self.timeout:g} s)"
        elif sig is not None:
            why = f"the process was killed by signal {sig} ({_signame(sig)})"
        else:
            why = f"the process exited (exit code {reply.get('code')}) while running the learner's code " \
                  "(os._exit, sys.exit, a crash, or out of memory)"
        return GradingAborted(why)

    def request(self, msg: dict, payload: Any = None, has_payload: bool = False) -> tuple[dict, Any]:
        """Send a request, serve the worker's callbacks, return (reply, decoded payload)."""
        self._send(msg, payload, has_payload)
        while True:
            reply, bufs = self.recv()
            op = reply.get("op")
            if op == "exited":
                raise self._died(reply)
            if op == "callback":
                self._serve_callback(reply, bufs)
                continue
            try:
                value = _decode(reply.get("payload"), bufs, self)
            except (_child.ProtocolError, KeyError, TypeError, ValueError, RecursionError) as exc:
                self.broken = True
                self._kill()
                raise GradingAborted(f"the learner's process sent malformed data ({exc})") from None
            return reply, value

    def _send(self, msg: dict, payload: Any, has_payload: bool) -> None:
        bufs: list[bytes] = []
        if has_payload:
            msg["payload"] = _child.encode(payload, bufs, lambda v: _parent_hook(v, bufs, self))
        try:
            _child.send(self.sandbox.fd_to, msg, bufs)
        except OSError:
            self.broken = True
            raise GradingAborted("the learner's process is gone") from None

    def _serve_callback(self, req: dict, bufs: list[bytes]) -> None:
        """The learner's code used a trusted object the check passed in (e.g. greedy_decode's model).

        Only the methods in :data:`CALLBACK_METHODS` may be called and only plain attributes read,
        so learner code cannot reconfigure the object the check compares against.
        """
        obj = self.remote.get(req.get("id"))
        method = req.get("method")
        try:
            if obj is None or not isinstance(method, str) or (method.startswith("_") and method != "__call__"):
                raise AttributeError(f"no attribute {method!r}")
            if "payload" not in req:  # attribute lookup
                value = getattr(obj, method)
                if callable(value):
                    if method not in CALLBACK_METHODS:
                        raise AttributeError(f"secure grading: {type(obj).__name__}.{method}() may not be called "
                                             f"here (allowed: {', '.join(sorted(CALLBACK_METHODS - {'__call__'}))})")
                    self._reply("method", None)
                    return
                self._reply("value", value, plain_only=True)
                return
            if method not in CALLBACK_METHODS:
                raise AttributeError(f"secure grading: {method}() may not be called here")
            payload = _decode(req["payload"], bufs, self)
            fn = obj if method == "__call__" else getattr(obj, method)
            result = fn(*payload["args"], **payload["kwargs"])
            if method in ("parameters", "named_parameters"):
                result = [(k, v.detach().clone()) if isinstance(v, torch.Tensor) else v for k, v in result] \
                    if method == "named_parameters" else [p.detach().clone() for p in result]
        except GradingAborted:
            raise
        except Exception as exc:  # noqa: BLE001 — reported to the learner's code as an error
            self._send({"op": "raise", "error": f"{type(exc).__name__}: {exc}"}, None, False)
            return
        self._reply("value", result)

    def _reply(self, kind: str, value: Any, plain_only: bool = False) -> None:
        bufs: list[bytes] = []

        def hook(v):
            if plain_only and not (type(v) in (torch.Tensor, nn.Parameter) or type(v) in (torch.dtype, torch.Size)):
                return {"$": "opaque", "type": type(v).__name__}
            if type(v) in (torch.Tensor, nn.Parameter):
                return _child.tensor_to_wire(v.detach().clone(), bufs)
            return _parent_hook(v, bufs, self)

        msg = {"op": "return", "kind": kind, "value": _child.encode(value, bufs, hook)}
        try:
            _child.send(self.sandbox.fd_to, msg, bufs)
        except OSError:
            self.broken = True
            raise GradingAborted("the learner's process is gone") from None

    def close(self) -> None:
        """End the worker: kill its process group (and whatever it started), collect its exit."""
        if not self.finished:
            self._kill()
            if not self.broken:
                try:
                    reply, _ = _child.recv(self.sandbox.fd_from, time.monotonic() + 10, 1 << 20)
                    if reply.get("op") != "exited":
                        self.broken = True
                except Exception:  # noqa: BLE001
                    self.broken = True
        if self.broken:
            self.sandbox.stop()  # the channel may hold half a message: start a fresh interpreter next time
        shutil.rmtree(self.workdir, ignore_errors=True)


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown"


# ============================================================================ values across the pipe

_STD_MODULES: dict[type, tuple[str, Any]] = {
    nn.Linear: ("Linear", lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                     "bias": m.bias is not None}),
    nn.LayerNorm: ("LayerNorm", lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps,
                                           "elementwise_affine": m.elementwise_affine,
                                           "bias": getattr(m, "bias", None) is not None}),
    nn.Embedding: ("Embedding", lambda m: {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim,
                                           "padding_idx": m.padding_idx, "max_norm": m.max_norm,
                                           "norm_type": m.norm_type,
                                           "scale_grad_by_freq": m.scale_grad_by_freq, "sparse": m.sparse}),
    nn.ReLU: ("ReLU", lambda m: {}),
    nn.GELU: ("GELU", lambda m: {"approximate": m.approximate}),
    nn.Tanh: ("Tanh", lambda m: {}),
    nn.Sigmoid: ("Sigmoid", lambda m: {}),
    nn.Softmax: ("Softmax", lambda m: {"dim": m.dim}),
    nn.Dropout: ("Dropout", lambda m: {"p": m.p}),
    nn.Identity: ("Identity", lambda m: {}),
    nn.RNNCell: ("RNNCell", lambda m: {"input_size": m.input_size, "hidden_size": m.hidden_size,
                                       "bias": m.bias, "nonlinearity": m.nonlinearity}),
    nn.GRUCell: ("GRUCell", lambda m: {"input_size": m.input_size, "hidden_size": m.hidden_size, "bias": m.bias}),
    nn.GRU: ("GRU", lambda m: {"input_size": m.input_size, "hidden_size": m.hidden_size,
                               "num_layers": m.num_layers, "bias": m.bias, "batch_first": m.batch_first,
                               "dropout": m.dropout, "bidirectional": m.bidirectional}),
    nn.RNN: ("RNN", lambda m: {"input_size": m.input_size, "hidden_size": m.hidden_size,
                               "num_layers": m.num_layers, "nonlinearity": m.nonlinearity, "bias": m.bias,
                               "batch_first": m.batch_first, "dropout": m.dropout,
                               "bidirectional": m.bidirectional}),
}


def _module_spec(m: nn.Module, bufs: list[bytes]) -> dict | None:
    """A standard layer as type name + constructor arguments + state tensors, or None."""
    if type(m) is nn.Sequential:
        children = [_module_spec(c, bufs) for c in m]
        if any(c is None for c in children):
            return None
        return {"$": "module", "cls": "Sequential", "children": children, "state": {}, "training": m.training}
    entry = _STD_MODULES.get(type(m))
    if entry is None:
        return None
    cls_name, init = entry
    if not all(type(c) in _STD_MODULES for c in m.children()):
        return None
    state = {k: _child.tensor_to_wire(v, bufs) for k, v in m.state_dict().items()}
    return {"$": "module", "cls": cls_name, "init": init(m), "state": state, "training": m.training}


class Opaque:
    """Something the learner's code returned that is not plain data (shown by its type name)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from the learner's code>"


_OPAQUE_TYPES: dict[str, type] = {}


def _opaque(type_name: Any) -> Opaque:
    name = str(type_name)[:80] or "object"
    if name not in _OPAQUE_TYPES and len(_OPAQUE_TYPES) < 1000:
        _OPAQUE_TYPES[name] = type(name, (Opaque,), {})
    return _OPAQUE_TYPES.get(name, Opaque)()


def _parent_hook(v: Any, bufs: list[bytes], session: Session) -> dict:
    if type(v) in (torch.Tensor, nn.Parameter):
        return _child.tensor_to_wire(v, bufs)
    if isinstance(v, RemoteObject):
        if v._session is not session:
            raise GradingAborted("internal: an object from another exercise was passed", status="error")
        return {"$": "handle", "id": v._id}
    if type(v) is torch.dtype:
        return {"$": "dtype", "v": str(v).replace("torch.", "")}
    if type(v) is torch.Size:
        return {"$": "tuple", "items": [int(s) for s in v]}
    if isinstance(v, nn.Module):
        spec = _module_spec(v, bufs)
        if spec is not None:
            return spec
    if isinstance(v, torch.Tensor):
        return _child.tensor_to_wire(v.as_subclass(torch.Tensor), bufs)
    # anything else the check passes (a scripted model, a Python function): stays in this
    # trusted process; the learner's code calls it back through the pipe
    rid = len(session.remote) + 1
    session.remote[rid] = v
    return {"$": "remote", "id": rid}


def _decode(value: Any, bufs: list[bytes], session: Session) -> Any:
    def hook(d: dict) -> Any:
        tag = d.get("$")
        if tag == "tensor":
            return _child.tensor_from_wire(d, bufs)
        if tag == "opaque":
            return _opaque(d.get("type"))
        if tag == "handle":
            return _remote_class(str(d.get("type", "object")), bool(d.get("module")))(
                session, int(d["id"]), str(d.get("type", "object"))[:80])
        if tag == "remote":
            return session.remote[int(d["id"])]
        if tag == "dtype" and d.get("v") in _child._DTYPES:
            return getattr(torch, d["v"])
        raise _child.ProtocolError(f"unexpected value tag {tag!r}")

    return _child.decode(value, bufs, hook)


def _arg_tensors(values: Any) -> list[torch.Tensor]:
    """The tensors among the arguments, in the order the worker snapshots them."""
    out: list[torch.Tensor] = []

    def walk(v, depth=0):
        if depth > _child.MAX_DEPTH:
            return
        if type(v) in (torch.Tensor, nn.Parameter):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)

    walk(values)
    return out


class RemoteObject:
    """Stands for a learner's function, class or module living in the worker process.

    ``tfmcourse.checks._core`` (``call``, ``load_weights``, ``count_parameters``,
    ``set_mode``) recognises it by ``__tfm_remote__`` and delegates to the
    ``__tfm_*__`` methods below; nothing else of the learner's object is reachable.
    """

    __tfm_remote__ = True

    def __init__(self, session: Session, hid: int, type_name: str):
        self._session, self._id, self.__tfm_type_name__ = session, hid, type_name

    def __repr__(self) -> str:
        return f"<learner's {self.__tfm_type_name__} (in the grading sandbox)>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__tfm_call__(self.__tfm_type_name__, args, kwargs)

    def __tfm_call__(self, name: str, args: tuple, kwargs: dict, no_grad: bool = False) -> Any:
        from tfmcourse.checks._core import CheckFailed, ExerciseNotAttempted

        sent = _arg_tensors((args, kwargs))
        reply, value = self._session.request(
            {"op": "call", "id": self._id, "method": "__call__", "no_grad": bool(no_grad)},
            {"args": tuple(args), "kwargs": dict(kwargs)}, True)
        op = reply.get("op")
        if op == "result":
            self._apply_mutations(sent, reply, value)
            return value["value"]
        if op == "not_attempted":
            raise ExerciseNotAttempted(f"{name}: not attempted yet ({reply.get('error')})")
        if op == "exception":
            raise CheckFailed(f"{name}: calling it raised {reply.get('summary')}")
        if op == "forbidden":
            raise GradingAborted(f"{reply.get('what')} — not allowed in this exercise")
        raise GradingAborted(f"the learner's process answered {op!r}")

    @staticmethod
    def _apply_mutations(sent: list[torch.Tensor], reply: dict, value: dict) -> None:
        """The learner's code modified its inputs in place: do the same to ours, so checks see it."""
        idx, new = reply.get("mutated") or [], value.get("mutated") or []
        if len(idx) != len(new):
            raise GradingAborted("the learner's process sent malformed data (mutations)")
        for i, t in zip(idx, new):
            if not (isinstance(i, int) and 0 <= i < len(sent) and type(t) is torch.Tensor):
                raise GradingAborted("the learner's process sent malformed data (mutations)")
            orig = sent[i]
            with torch.no_grad():
                if orig.dtype == t.dtype and orig.shape == t.shape:
                    orig.copy_(t)
                else:
                    orig.data = t

    def _module_op(self, op: str, **extra: Any) -> Any:
        from tfmcourse.checks._core import CheckFailed

        payload = extra.pop("payload", None)
        reply, value = self._session.request({"op": op, "id": self._id, **extra}, payload, payload is not None)
        if reply.get("op") == "ok":
            return value
        label = self.__tfm_type_name__
        raise CheckFailed(f"{label}: {reply.get('error') or reply.get('summary') or 'not a torch.nn.Module'}")

    def __tfm_parameters__(self) -> dict[str, SimpleNamespace]:
        """Name -> an object with the parameter's ``shape`` (the values stay in the worker)."""
        shapes = self._module_op("param_shapes")
        if not isinstance(shapes, dict) or not all(isinstance(v, list) for v in shapes.values()):
            raise GradingAborted("the learner's process sent malformed data (parameters)")
        return {str(k): SimpleNamespace(shape=torch.Size(int(s) for s in v)) for k, v in shapes.items()}

    def __tfm_load__(self, weights: dict[str, torch.Tensor]) -> None:
        self._module_op("load_weights", payload={str(k): v.detach() for k, v in weights.items()})

    def __tfm_count_parameters__(self) -> int:
        n = self._module_op("count_parameters")
        if type(n) is not int:
            raise GradingAborted("the learner's process sent malformed data (parameter count)")
        return n

    def __tfm_set_mode__(self, training: bool) -> None:
        self._module_op("set_mode", training=bool(training))


class RemoteModule(RemoteObject, nn.Module):
    """A learner's ``nn.Module`` in the worker: ``isinstance(x, nn.Module)`` holds, nothing else is local."""

    def __init__(self, session: Session, hid: int, type_name: str):
        nn.Module.__init__(self)
        RemoteObject.__init__(self, session, hid, type_name)

    __call__ = RemoteObject.__call__
    __repr__ = RemoteObject.__repr__


_REMOTE_TYPES: dict[tuple[str, bool], type] = {}


def _remote_class(type_name: str, module: bool) -> type:
    """A proxy class named like the learner's class, so messages say ``got FeedForward``."""
    name = re.sub(r"\W", "_", type_name)[:80] or "object"
    key = (name, module)
    if key not in _REMOTE_TYPES:
        if len(_REMOTE_TYPES) > 1000:
            return RemoteModule if module else RemoteObject
        _REMOTE_TYPES[key] = type(name, (RemoteModule if module else RemoteObject,), {})
    return _REMOTE_TYPES[key]


# ============================================================================ grading


def exercises_for(path: str | os.PathLike, ex: Extracted) -> list[str]:
    """Exercises a notebook is graded on: its lesson (from ``NN_name.ipynb``) and its check calls."""
    from tfmcourse.checks import EXERCISES

    names = {n for n in ex.check_calls if n in EXERCISES}
    m = re.match(r"(\d+)_", Path(path).name)
    if m:
        names |= {n for n, e in EXERCISES.items() if e.lesson == int(m.group(1))}
    return [n for n in EXERCISES if n in names]


def new_seed() -> int:
    """A hidden seed, never 0 (the seed the notebooks show)."""
    return secrets.randbelow(2**31 - 2) + 1


def _result(name: str, status: str, message: str = "", reason: str = "") -> ExerciseResult:
    from tfmcourse.checks import EXERCISES

    e = EXERCISES[name]
    return ExerciseResult(name, e.lesson, status, e.points if status == "passed" else 0, e.points,
                          message, reason)


def grade_exercise(sandbox: Sandbox, ex: Extracted, name: str, *, seed: int,
                   timeout: float = DEFAULT_TIMEOUT) -> ExerciseResult:
    from tfmcourse.checks import EXERCISES, CheckFailed, ExerciseNotAttempted

    if name not in ex.defs:
        if name in ex.course_names:
            why = (f"imports {ex.course_names[name]} from the course package tfmcourse (its reference "
                   "implementation) instead of writing it")
            return _result(name, "failed", f"{name}: {why}", "rejected before running: " + why)
        for cell, err, names in ex.broken:
            if name in names:
                return _result(name, "failed", f"{name}: cell {cell + 1} does not parse: {err}",
                               "syntax error in the cell that defines it")
        return _result(name, "not attempted", f"{name}: no definition found in the notebook",
                       "not defined in the notebook")
    units = closure(ex, name)
    problems = static_violations(ex, name, units)
    if problems:
        return _result(name, "failed", f"{name}: " + "; ".join(problems),
                       "rejected before running: " + "; ".join(problems))
    session = None
    try:
        try:
            session = sandbox.open(name, units, ex.imports, timeout, ex.cells,
                                   course_bindings(ex, name, units))
        except (OSError, RuntimeError, TimeoutError, EOFError, _child.ProtocolError) as exc:
            sandbox.stop()
            return _result(name, "error", f"{name}: the grading sandbox could not start ({exc})",
                           "grading sandbox unavailable")
        ready, _ = session.recv()  # the worker's answer to the set-up
        op = ready.get("op")
        if op == "exited":
            raise session._died(ready)
        if op == "forbidden":
            raise GradingAborted(f"{ready.get('what')} — not allowed in this exercise")
        if op == "missing":
            notes = "; ".join(ready.get("notes") or [])[:1500]
            return _result(name, "failed", f"{name}: defining it failed: {notes}",
                           "its definition raised an error")
        if op != "ready":
            raise GradingAborted(f"the learner's process answered {op!r}")
        proxy = RemoteObject(session, 0, name)
        with contextlib.redirect_stdout(io.StringIO()):
            EXERCISES[name].check(proxy, seed=seed)
        return _result(name, "passed", "", "passed the check on hidden inputs, out of process")
    except ExerciseNotAttempted as exc:
        return _result(name, "not attempted", str(exc), "still raises NotImplementedError")
    except CheckFailed as exc:
        return _result(name, "failed", str(exc), "failed the check on hidden inputs")
    except GradingAborted as exc:
        return _result(name, exc.status, exc.message or f"{name}: {exc.reason}", exc.reason)
    except Exception as exc:  # noqa: BLE001 — the check could not handle what came back
        return _result(name, "error", f"{name}: the check could not use the result: "
                                      f"{type(exc).__name__}: {str(exc)[:300]}",
                       "the check raised an unexpected error on the returned value")
    finally:
        if session is not None:
            session.close()


_SANDBOX: Sandbox | None = None


def _shared_sandbox(memory: int) -> Sandbox:
    """One clean interpreter per grading process, reused for every exercise (each gets a fresh fork)."""
    global _SANDBOX
    if _SANDBOX is None or _SANDBOX.memory_mb != memory:
        if _SANDBOX is not None:
            _SANDBOX.close()
        _SANDBOX = Sandbox(memory)
        import atexit
        import multiprocessing.util

        atexit.register(_SANDBOX.close)
        multiprocessing.util.Finalize(_SANDBOX, _SANDBOX.close, exitpriority=10)  # pool workers skip atexit
    return _SANDBOX


def grade_notebook(path: str | os.PathLike, *, seed: int | None = None, timeout: float | None = None,
                   memory: int | None = None, display_path: str | None = None) -> NotebookReport:
    """Grade one notebook securely. The notebook file is only read."""
    seed = new_seed() if seed is None else int(seed)
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    memory = DEFAULT_MEMORY if memory is None else int(memory)
    report = NotebookReport(path=display_path or str(path))
    try:
        ex = extract(read_cells(path))
    except NotebookError as exc:
        report.error = str(exc)
        return report
    names = exercises_for(path, ex)
    if not names:
        report.error = ("no graded exercise found (name the notebook like the course's NN_name.ipynb, "
                        "and keep its check_<name>(<name>) cells)")
        return report
    sandbox = _shared_sandbox(memory)
    for name in names:
        report.exercises.append(grade_exercise(sandbox, ex, name, seed=seed, timeout=timeout))
    return report


def _grade_job(job: tuple) -> dict:
    """Worker-process entry point: plain arguments in, a plain dict out."""
    path, display, seed, timeout, memory = job
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            report = grade_notebook(path, seed=seed, timeout=timeout, memory=memory, display_path=display)
    except Exception as exc:  # noqa: BLE001 — one notebook never stops the run
        report = NotebookReport(path=display, error=f"grading failed: {type(exc).__name__}: {exc}")
    return report.to_dict()


def report_from_dict(d: dict) -> NotebookReport:
    return NotebookReport(path=d["path"], error=d.get("error"),
                          exercises=[ExerciseResult(**e) for e in d.get("exercises", [])])


def grade_many(jobs: list[tuple[str, str]], *, seed: int, timeout: float, memory: int, n_jobs: int = 1,
               progress: bool = True) -> list[NotebookReport]:
    """Grade ``[(path, display_path), …]`` with ``n_jobs`` processes; results in the input order."""
    from tqdm.auto import tqdm

    work = [(p, d, seed, timeout, memory) for p, d in jobs]
    results: list[dict | None] = [None] * len(work)
    bar = tqdm(total=len(work), desc="grading", unit="notebook", disable=not progress, file=sys.stderr)
    try:
        if n_jobs <= 1 or len(work) <= 1:
            for i, w in enumerate(work):
                results[i] = _grade_job(w)
                bar.update()
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            with cf.ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_grade_job, w): i for i, w in enumerate(work)}
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # noqa: BLE001 — a dead worker: report, keep going
                        results[i] = NotebookReport(path=work[i][1], error=f"grading failed: {exc}").to_dict()
                    bar.update()
    finally:
        bar.close()
    return [report_from_dict(r) for r in results]


# ============================================================================ command line


def main(args) -> int:
    from tfmcourse.grading import gradebook
    from tfmcourse.grading.report import render_table

    try:
        submissions = gradebook.collect(args.paths)
    except FileNotFoundError as exc:
        print(f"tfmcourse grade --secure: {exc}", file=sys.stderr)
        return 2
    if not submissions:
        print("tfmcourse grade --secure: nothing to grade", file=sys.stderr)
        return 2
    folders = [Path(p).resolve() for p in args.paths if Path(p).is_dir()]
    csv_path, json_path = getattr(args, "csv", None), getattr(args, "json", None)
    if folders and not csv_path and not json_path:
        csv_path, json_path = "gradebook.csv", "gradebook.json"
    for out in (csv_path, json_path):
        if out and any(Path(out).resolve().is_relative_to(f) for f in folders):
            print(f"tfmcourse grade --secure: refusing to write {out} inside the graded folder "
                  "(nothing in it is ever modified)", file=sys.stderr)
            return 2
    seed = new_seed() if getattr(args, "seed", None) is None else int(args.seed)
    timeout = DEFAULT_TIMEOUT if getattr(args, "timeout", None) is None else float(args.timeout)
    memory = DEFAULT_MEMORY if getattr(args, "memory", None) is None else int(args.memory)
    n_jobs = getattr(args, "jobs", None) or min(4, os.cpu_count() or 1)
    gradeable = [(s.path, s.display) for s in submissions if s.problem is None]
    reports = dict(zip((d for _, d in gradeable),
                       grade_many(gradeable, seed=seed, timeout=timeout, memory=memory, n_jobs=n_jobs)))
    for s in submissions:
        if s.problem is not None:
            reports[s.display] = NotebookReport(path=s.display, error=s.problem)
    ordered = [(s.student, reports[s.display]) for s in submissions]
    if not folders or len(ordered) <= 8:
        sys.stdout.write(render_table([r for _, r in ordered]))
    else:
        sys.stdout.write(gradebook.render_summary(ordered))
    print(f"(secure mode: hidden seed {seed}; limits {timeout:g} s and {memory} MiB per exercise)")
    if json_path:
        gradebook.write_json(ordered, json_path, seed=seed, timeout=timeout, memory=memory)
        print(f"details written to {json_path}")
    if csv_path:
        gradebook.write_csv(ordered, csv_path)
        print(f"gradebook written to {csv_path}")
    named = {str(Path(p)) for p in args.paths if Path(p).is_file()}
    if all(r.error for _, r in ordered) or any(r.error and r.path in named for _, r in ordered):
        return 2
    return 0
