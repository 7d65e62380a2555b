"""The parent side of ``tfmcourse grade --secure``'s sandbox: the learner's process and its proxies.

A :class:`Sandbox` is a clean ``python -I -S`` interpreter
(:mod:`tfmcourse.grading._child`) that cannot import ``tfmcourse``, started
once per grading process (:func:`shared_sandbox`). For each exercise it forks a
worker with its own session, temporary directory and limits (address space,
CPU seconds, file size) and a wall-clock deadline after which its process
group is killed; import hooks and traps on the forbidden built-ins report their
use at run time too. A :class:`Session` is the conversation with one worker: a
pipe carrying JSON and raw tensor bytes (never pickle), over which the worker
may also call back trusted objects a check passed in (:data:`CALLBACK_METHODS`).

The check receives a :class:`RemoteObject` (or :class:`RemoteModule`) in place
of the learner's function, class or module: every call is forwarded to the
worker, and results come back as plain ``torch.Tensor`` data, so
monkeypatching, tensor subclasses or a replaced check in the notebook have no
effect on the comparison.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from tfmcourse.grading import _child
from tfmcourse.grading.extract import Unit, course_policy, forbidden_for

DEFAULT_TIMEOUT = 20.0  # seconds per exercise (defining it + every call the check makes)
DEFAULT_MEMORY = 2048  # MiB of address space per exercise (torch alone maps ~650 MiB)
STARTUP_TIMEOUT = 180.0  # seconds for the clean interpreter to import torch (once per worker)


# ============================================================================ the sandbox


#: What learner code may call on a trusted object a check passes in (e.g. greedy_decode's model).
CALLBACK_METHODS = frozenset(
    {"__call__", "forward", "encode", "decode", "eval", "parameters", "named_parameters"}
)


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
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TMPDIR": str(self.root),
        }
        self.log = open(self.root / "child.log", "ab")  # noqa: SIM115 (open for the process's lifetime)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", _child.__file__, str(r_child), str(w_child), *_site_dirs()],
                pass_fds=(r_child, w_child),
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=self.log,
                cwd=self.root,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
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
    def open(
        self,
        name: str,
        units: list[Unit],
        imports: list[Unit],
        timeout: float,
        cells: dict[int, str] | None = None,
        bind: dict[str, str] | None = None,
    ) -> Session:
        self.ensure()
        self.count += 1
        workdir = self.root / f"ex{self.count}"
        kept = sorted(imports + units, key=lambda u: u.order)
        chunks = [[f"<cell {u.cell + 1}>", u.source] for u in kept]
        lines = {f"<cell {c + 1}>": (cells or {}).get(c, "") for c in {u.cell for u in kept}}
        import tfmcourse

        msg = {
            "op": "fork",
            "exercise": name,
            "chunks": chunks,
            "lines": lines,
            "bind": bind or {},
            "prune": course_policy(name)[1],
            "course_root": str(Path(tfmcourse.__file__).resolve().parent.parent),
            "forbidden": [f.wire() for f in forbidden_for(name)],
            "memory_mb": self.memory_mb,
            "cpu_seconds": math.ceil(timeout) + 1,
            "workdir": str(workdir),
        }
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
            raise GradingAborted(
                f"time limit exceeded: the exercise used more than {self.timeout:g} s "
                "(an infinite loop, or far too slow)"
            ) from None
        except (EOFError, OSError, _child.ProtocolError, struct.error) as exc:
            self.broken = True
            self._kill()
            raise GradingAborted(
                f"the learner's process broke the grading channel ({type(exc).__name__})"
            ) from None

    def _died(self, reply: dict) -> GradingAborted:
        self.finished = True
        self.pid = 0  # reaped by the zygote: never signal that pid again
        sig = reply.get("signal")
        if sig == signal.SIGXCPU:
            why = f"CPU time limit exceeded ({self.timeout:g} s)"
        elif sig is not None:
            why = f"the process was killed by signal {sig} ({_signame(sig)})"
        else:
            why = (
                f"the process exited (exit code {reply.get('code')}) while running the learner's code "
                "(os._exit, sys.exit, a crash, or out of memory)"
            )
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
            if (
                obj is None
                or not isinstance(method, str)
                or (method.startswith("_") and method != "__call__")
            ):
                raise AttributeError(f"no attribute {method!r}")
            if "payload" not in req:  # attribute lookup
                value = getattr(obj, method)
                if callable(value):
                    if method not in CALLBACK_METHODS:
                        raise AttributeError(
                            f"secure grading: {type(obj).__name__}.{method}() may not be called "
                            f"here (allowed: {', '.join(sorted(CALLBACK_METHODS - {'__call__'}))})"
                        )
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
                result = (
                    [(k, v.detach().clone()) if isinstance(v, torch.Tensor) else v for k, v in result]
                    if method == "named_parameters"
                    else [p.detach().clone() for p in result]
                )
        except GradingAborted:
            raise
        except Exception as exc:
            self._send({"op": "raise", "error": f"{type(exc).__name__}: {exc}"}, None, False)
            return
        self._reply("value", result)

    def _reply(self, kind: str, value: Any, plain_only: bool = False) -> None:
        bufs: list[bytes] = []

        def hook(v):
            if plain_only and not (
                type(v) in (torch.Tensor, nn.Parameter) or type(v) in (torch.dtype, torch.Size)
            ):
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
                except Exception:
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
    nn.Linear: (
        "Linear",
        lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
    ),
    nn.LayerNorm: (
        "LayerNorm",
        lambda m: {
            "normalized_shape": list(m.normalized_shape),
            "eps": m.eps,
            "elementwise_affine": m.elementwise_affine,
            "bias": getattr(m, "bias", None) is not None,
        },
    ),
    nn.Embedding: (
        "Embedding",
        lambda m: {
            "num_embeddings": m.num_embeddings,
            "embedding_dim": m.embedding_dim,
            "padding_idx": m.padding_idx,
            "max_norm": m.max_norm,
            "norm_type": m.norm_type,
            "scale_grad_by_freq": m.scale_grad_by_freq,
            "sparse": m.sparse,
        },
    ),
    nn.ReLU: ("ReLU", lambda m: {}),
    nn.GELU: ("GELU", lambda m: {"approximate": m.approximate}),
    nn.Tanh: ("Tanh", lambda m: {}),
    nn.Sigmoid: ("Sigmoid", lambda m: {}),
    nn.Softmax: ("Softmax", lambda m: {"dim": m.dim}),
    nn.Dropout: ("Dropout", lambda m: {"p": m.p}),
    nn.Identity: ("Identity", lambda m: {}),
    nn.RNNCell: (
        "RNNCell",
        lambda m: {
            "input_size": m.input_size,
            "hidden_size": m.hidden_size,
            "bias": m.bias,
            "nonlinearity": m.nonlinearity,
        },
    ),
    nn.GRUCell: (
        "GRUCell",
        lambda m: {"input_size": m.input_size, "hidden_size": m.hidden_size, "bias": m.bias},
    ),
    nn.GRU: (
        "GRU",
        lambda m: {
            "input_size": m.input_size,
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "bias": m.bias,
            "batch_first": m.batch_first,
            "dropout": m.dropout,
            "bidirectional": m.bidirectional,
        },
    ),
    nn.RNN: (
        "RNN",
        lambda m: {
            "input_size": m.input_size,
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "nonlinearity": m.nonlinearity,
            "bias": m.bias,
            "batch_first": m.batch_first,
            "dropout": m.dropout,
            "bidirectional": m.bidirectional,
        },
    ),
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
                session, int(d["id"]), str(d.get("type", "object"))[:80]
            )
        if tag == "remote":
            return session.remote[int(d["id"])]
        if tag == "dtype" and d.get("v") in _child._DTYPES:
            return getattr(torch, d["v"])
        raise _child.ProtocolError(f"unexpected value tag {tag!r}")

    return _child.decode(value, bufs, hook)


def _arg_tensors(values: Any) -> list[torch.Tensor]:
    """The tensors among the arguments, in the order the worker snapshots them."""
    return _child.tensors_in(values)


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
            {"args": tuple(args), "kwargs": dict(kwargs)},
            True,
        )
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
        reply, value = self._session.request(
            {"op": op, "id": self._id, **extra}, payload, payload is not None
        )
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


# ============================================================================ one interpreter per process


_SANDBOX: Sandbox | None = None


def shared_sandbox(memory: int) -> Sandbox:
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
