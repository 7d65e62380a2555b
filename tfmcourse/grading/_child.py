"""The untrusted side of ``tfmcourse grade --secure``: runs learner code, nothing else.

This file is executed as a script (``python -I -S _child.py FD_IN FD_OUT SITE...``)
and must never import ``tfmcourse``: the learner's process cannot import the
course package at all (it is not on ``sys.path`` and an import hook refuses it).
The trusted parent (``sandbox.py``) imports this module for the wire
format (:func:`send`, :func:`recv`, :func:`encode`, :func:`decode`).

Process layout (one per notebook)::

    parent (trusted: runs the checks) --pipes-- zygote (python -I -S, torch imported once)
                                                  └─ fork per exercise → worker (setsid,
                                                     rlimits, own temp dir, import hook,
                                                     traps on forbidden built-ins, learner code)

Wire format: a frame is ``b"TFMG" | u32 json length | u32 number of buffers``, the
JSON (UTF-8), then each buffer as ``u64 length | bytes``. Tensors travel as
``{"$": "tensor", "dtype", "shape", "buf"}`` plus raw bytes: plain data only,
no pickle anywhere.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import struct
import sys
import time
import traceback

MAGIC = b"TFMG"
_HEAD = struct.Struct("<4sII")
_LEN = struct.Struct("<Q")
MAX_DEPTH = 32


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame."""


# ----------------------------------------------------------------------------- framing


def send(fd: int, obj: dict, bufs: list[bytes] = ()) -> None:
    head = json.dumps(obj, allow_nan=True, separators=(",", ":")).encode()
    parts = [_HEAD.pack(MAGIC, len(head), len(bufs)), head]
    for b in bufs:
        parts.append(_LEN.pack(len(b)))
        parts.append(b)
    data = memoryview(b"".join(parts))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int, deadline: float | None = None, max_bytes: int = 1 << 62) -> tuple[dict, list[bytes]]:
    """Read one frame. ``TimeoutError`` past ``deadline``, ``EOFError`` if the writer is gone."""
    magic, n_json, n_bufs = _HEAD.unpack(_read_exact(fd, _HEAD.size, deadline))
    if magic != MAGIC or n_json > max_bytes or n_bufs > 100_000:
        raise ProtocolError("bad frame header")
    total = n_json
    try:
        obj = json.loads(_read_exact(fd, n_json, deadline).decode())
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a frame must hold a JSON object")
    bufs = []
    for _ in range(n_bufs):
        (n,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
        total += n
        if total > max_bytes:
            raise ProtocolError(f"message larger than {max_bytes} bytes")
        bufs.append(_read_exact(fd, n, deadline))
    return obj, bufs


# ----------------------------------------------------------------------------- values

_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
)


def tensor_to_wire(t, bufs: list[bytes]) -> dict:
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    name = str(t.dtype).replace("torch.", "")
    if name not in _DTYPES:
        return {"$": "opaque", "type": f"tensor of dtype {name}"}
    flat = t.contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    bufs.append(raw)
    return {"$": "tensor", "dtype": name, "shape": list(t.shape), "buf": len(bufs) - 1}


def tensor_from_wire(d: dict, bufs: list[bytes]):
    import torch

    name, shape, i = d.get("dtype"), d.get("shape"), d.get("buf")
    if (
        name not in _DTYPES
        or not isinstance(shape, list)
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40 for s in shape)
        or not isinstance(i, int)
        or not 0 <= i < len(bufs)
        or len(shape) > 16
    ):
        raise ProtocolError("malformed tensor")
    dtype = getattr(torch, name)
    numel = math.prod(shape)
    raw = bufs[i]
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise ProtocolError("tensor data does not match its dtype and shape")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


def encode(value, bufs: list[bytes], hook, depth: int = 0):
    """JSON-able form of ``value``; ``hook(value)`` handles what plain data cannot (or None)."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value) is int:
        return value if abs(value) < 2**63 else {"$": "opaque", "type": "huge int"}
    if type(value) is float:
        if math.isfinite(value):
            return value
        return {"$": "float", "v": repr(value)}
    if isinstance(value, float):  # a float subclass (e.g. numpy.float64): its plain value
        return encode(float(value), bufs, hook, depth + 1)
    if isinstance(value, int) and not isinstance(value, bool):
        return encode(int(value), bufs, hook, depth + 1)
    if type(value) is tuple:
        return {"$": "tuple", "items": [encode(v, bufs, hook, depth + 1) for v in value]}
    if type(value) is list:
        return [encode(v, bufs, hook, depth + 1) for v in value]
    if type(value) is dict and all(type(k) in (str, int) for k in value):
        return {"$": "dict", "items": [[k, encode(v, bufs, hook, depth + 1)] for k, v in value.items()]}
    out = hook(value)
    if out is None:
        return {"$": "opaque", "type": type(value).__name__}
    return out


def decode(value, bufs: list[bytes], hook, depth: int = 0):
    """Inverse of :func:`encode`; ``hook(dict)`` rebuilds tagged values other than containers."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, bufs, hook, depth + 1) for v in value]
    if not isinstance(value, dict):
        raise ProtocolError("unexpected JSON value")
    tag = value.get("$")
    if tag == "tuple":
        return tuple(decode(v, bufs, hook, depth + 1) for v in value.get("items", []))
    if tag == "dict":
        out = {}
        for item in value.get("items", []):
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) in (str, int)):
                raise ProtocolError("malformed dict")
            out[item[0]] = decode(item[1], bufs, hook, depth + 1)
        return out
    if tag == "float":
        v = value.get("v")
        if v not in ("nan", "inf", "-inf"):
            raise ProtocolError("malformed float")
        return float(v)
    return hook(value)


# ============================================================================= the worker
# Everything below runs only in the child process.

_FD_IN = _FD_OUT = -1
_HANDLES: dict[int, object] = {}  # learner objects the parent holds handles to
_VIOLATIONS: list[str] = []  # forbidden things the learner's code touched
_ORIGINAL: dict[str, object] = {}  # torch.nn classes captured before any trap


def _summary(exc: BaseException) -> str:
    """Same wording as ``tfmcourse.checks._core._summary``."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (line {last.lineno}: {last.line.strip()})" if last.line else f" (line {last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


class _Blocker:
    """Import hook: the course package (and the grader) cannot be imported by learner code."""

    BLOCKED = ("tfmcourse", "tests")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED and name not in sys.modules:
            _VIOLATIONS.append(f"imports {name}, part of the course's own reference code")
            raise ImportError(
                f"secure grading: importing {name!r} is not allowed "
                "(write the exercise yourself, without the course's reference code)"
            )
        return None


class _Remote:
    """A trusted object living in the parent (e.g. the scripted model of greedy_decode)."""

    __slots__ = ("_tfm_id",)

    def __init__(self, rid: int):
        object.__setattr__(self, "_tfm_id", rid)

    def __call__(self, *args, **kwargs):
        return _callback(self._tfm_id, "__call__", args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        kind, value = _callback(self._tfm_id, name, None, None)
        if kind == "method":
            if name in ("parameters", "named_parameters"):  # generators in torch: keep `next(...)` working
                return lambda *a, **k: iter(_callback(self._tfm_id, name, a, k))
            return lambda *a, **k: _callback(self._tfm_id, name, a, k)
        return value

    def __repr__(self):
        return f"<remote object {self._tfm_id}>"


def _child_hook(value):
    """Encoding learner values for the parent: plain data only, learner objects as handles."""
    import torch

    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return tensor_to_wire(value, _OUT_BUFS[-1])
    if isinstance(value, torch.Tensor):
        return {"$": "opaque", "type": f"{type(value).__name__} (a torch.Tensor subclass)"}
    if isinstance(value, _Remote):
        return {"$": "remote", "id": value._tfm_id}
    if type(value) is torch.dtype:
        return {"$": "dtype", "v": str(value).replace("torch.", "")}
    if type(value) is torch.Size:
        return {"$": "tuple", "items": [int(s) for s in value]}
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        item = value.item()  # a numpy scalar (numbers.Real in the notebook): its plain value
        if type(item) in (bool, int, float):
            return encode(item, _OUT_BUFS[-1], _child_hook)
    if isinstance(value, torch.nn.Module) or callable(value):
        hid = len(_HANDLES) + 1
        _HANDLES[hid] = value
        return {
            "$": "handle",
            "id": hid,
            "type": type(value).__name__,
            "module": isinstance(value, _ORIGINAL["Module"]),
        }
    return {"$": "opaque", "type": type(value).__name__}


_OUT_BUFS: list[list[bytes]] = [[]]


def _send(obj: dict, payload_key: str | None = None, payload=None) -> None:
    _OUT_BUFS.append([])
    try:
        if payload_key is not None:
            obj[payload_key] = encode(payload, _OUT_BUFS[-1], _child_hook)
        send(_FD_OUT, obj, _OUT_BUFS[-1])
    finally:
        _OUT_BUFS.pop()


def _build_module(d: dict, bufs):
    """Rebuild a standard torch.nn layer from its type name, constructor arguments and state."""
    import torch

    cls = _ORIGINAL.get(d.get("cls"))
    if cls is None:
        raise ProtocolError(f"not a whitelisted module type: {d.get('cls')!r}")
    if d["cls"] == "Sequential":
        module = cls(*[_child_decode(c, bufs) for c in d.get("children", [])])
    else:
        init = d.get("init", {})
        module = cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in init.items()})
    state = {k: tensor_from_wire(v, bufs) for k, v in d.get("state", {}).items()}
    with torch.no_grad():
        module.load_state_dict(state, strict=False)
    module.train(bool(d.get("training", False)))
    return module


def _child_decode_hook(d: dict, bufs):
    import torch

    tag = d.get("$")
    if tag == "tensor":
        return tensor_from_wire(d, bufs)
    if tag == "module":
        return _build_module(d, bufs)
    if tag == "remote":
        return _Remote(int(d["id"]))
    if tag == "handle":
        return _HANDLES[int(d["id"])]
    if tag == "dtype":
        return getattr(torch, d["v"])
    raise ProtocolError(f"unknown value tag {tag!r}")


def _child_decode(value, bufs):
    return decode(value, bufs, lambda d: _child_decode_hook(d, bufs))


def _callback(rid: int, method: str, args, kwargs):
    """Call a method of a trusted parent object; the parent does the work and sends plain data."""
    msg = {"op": "callback", "id": rid, "method": method}
    if args is None:
        _send(msg)
    else:
        _send(msg, "payload", {"args": tuple(args), "kwargs": dict(kwargs)})
    reply, bufs = recv(_FD_IN)
    if reply.get("op") == "raise":
        raise RuntimeError(str(reply.get("error")))
    value = _child_decode(reply.get("value"), bufs)
    if args is None:
        return reply.get("kind"), value
    return value


# ----------------------------------------------------------------------------- traps


def _resolve(qualname: str):
    import importlib

    parts = qualname.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return None
        return obj
    return None


def _hit(entry: dict, args, kwargs) -> bool:
    kw, pos = entry.get("kwarg"), entry.get("pos")
    if kw is None:
        return True
    val = kwargs.get(kw, args[pos] if pos is not None and len(args) > pos else None)
    return val not in (None, 0, 0.0, False)


def _make_trap(orig, entry: dict):
    what = entry["qualname"] + (f"({entry['kwarg']}=...)" if entry.get("kwarg") else "")

    def record():
        _VIOLATIONS.append(f"uses {what}")
        return RuntimeError(f"secure grading: {what} is not allowed in this exercise: {entry.get('why', '')}")

    if isinstance(orig, type):

        def __init__(self, *args, **kwargs):
            if _hit(entry, args, kwargs):
                raise record()
            orig.__init__(self, *args, **kwargs)

        return type(
            orig.__name__,
            (orig,),
            {"__init__": __init__, "__module__": orig.__module__, "__qualname__": orig.__qualname__},
        )

    def trap(*args, **kwargs):
        if _hit(entry, args, kwargs):
            raise record()
        return orig(*args, **kwargs)

    trap.__name__ = getattr(orig, "__name__", "trap")
    trap.__doc__ = getattr(orig, "__doc__", None)
    return trap


def _install_traps(entries: list[dict]) -> None:
    """Replace every alias of each forbidden torch object, in every loaded torch module."""
    for entry in entries:
        orig = _resolve(entry["qualname"])
        if orig is None:
            continue
        trap = _make_trap(orig, entry)
        for modname, mod in list(sys.modules.items()):
            if mod is None or not (modname == "torch" or modname.startswith("torch.")):
                continue
            try:
                names = [k for k, v in list(vars(mod).items()) if v is orig]
            except TypeError:
                continue
            for k in names:
                with contextlib.suppress(Exception):
                    setattr(mod, k, trap)


# ----------------------------------------------------------------------------- requests


def tensors_in(values):
    """The plain tensors among (nested) arguments, in a fixed order.

    The parent (``sandbox.py``) and this worker both use this one walk, so the
    tensors they pair up when in-place changes are copied back always match.
    """
    import torch

    out = []

    def walk(v, depth=0):
        if depth > MAX_DEPTH:
            return
        if type(v) in (torch.Tensor, torch.nn.Parameter):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)

    walk(values)
    return out


def _snapshot(values):
    return [(t, t.dtype, tuple(t.shape), t.detach().clone()) for t in tensors_in(values)]


def _changed(t, dtype, shape, before) -> bool:
    import torch

    if t.dtype != dtype or tuple(t.shape) != shape:
        return True
    a, b = t.detach(), before
    if a.is_floating_point() or a.is_complex():
        return not bool(torch.equal(torch.isnan(a), torch.isnan(b))) or not bool(
            torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
        )
    return not bool(torch.equal(a, b))


def _do_call(msg, bufs) -> None:
    import contextlib

    import torch

    target = _HANDLES.get(int(msg.get("id", 0)))
    payload = _child_decode(msg.get("payload"), bufs)
    args, kwargs = tuple(payload["args"]), dict(payload["kwargs"])
    method = msg.get("method") or "__call__"
    before = _snapshot((args, kwargs))
    try:
        fn = target if method == "__call__" else getattr(target, method)
        with torch.no_grad() if msg.get("no_grad") else contextlib.nullcontext():
            result = fn(*args, **kwargs)
    except NotImplementedError as exc:
        if _VIOLATIONS:
            _send({"op": "forbidden", "what": _VIOLATIONS[0]})
            return
        _send({"op": "not_attempted", "error": str(exc)[:2000]})
        return
    except BaseException as exc:
        if _VIOLATIONS:
            _send({"op": "forbidden", "what": _VIOLATIONS[0]})
            return
        _send({"op": "exception", "summary": _summary(exc)[:4000]})
        return
    if _VIOLATIONS:
        _send({"op": "forbidden", "what": _VIOLATIONS[0]})
        return
    try:
        mutated = [i for i, (t, dt, sh, b) in enumerate(before) if _changed(t, dt, sh, b)]
        _send(
            {"op": "result", "mutated": mutated},
            "payload",
            {"value": result, "mutated": [before[i][0] for i in mutated]},
        )
    except Exception as exc:
        _send({"op": "exception", "summary": f"its result cannot be graded ({_summary(exc)})"[:4000]})


def _do_module_op(msg, bufs) -> None:
    import torch

    module = _HANDLES.get(int(msg.get("id", 0)))
    op = msg["op"]
    Module = _ORIGINAL["Module"]
    if not isinstance(module, Module):
        _send({"op": "error", "error": f"not a torch.nn.Module but {type(module).__name__}"})
        return
    try:
        params = dict(Module.named_parameters(module))
        if op == "param_shapes":
            _send({"op": "ok"}, "payload", {k: list(p.shape) for k, p in params.items()})
        elif op == "count_parameters":
            _send({"op": "ok"}, "payload", sum(p.numel() for p in Module.parameters(module)))
        elif op == "set_mode":
            Module.train(module, bool(msg.get("training")))
            _send({"op": "ok"}, "payload", None)
        elif op == "load_weights":
            weights = _child_decode(msg.get("payload"), bufs)
            with torch.no_grad():
                for k, v in weights.items():
                    params[k].copy_(v)
            _send({"op": "ok"}, "payload", None)
    except BaseException as exc:
        _send({"op": "exception", "summary": _summary(exc)[:4000]})


def _preload_course(msg) -> dict:
    """Import the earlier lessons' reference code the exercise may use, then prune the rest.

    The course package is not on ``sys.path``: it is imported from ``course_root``
    only here, before the import hook closes it; every reference implementation of
    this lesson and later ones (``prune``) is then deleted from the loaded modules.
    """
    binds = msg.get("bind") or {}
    if not binds:
        return {}
    root = msg.get("course_root")
    sys.path.insert(0, root)
    try:
        objs = {name: _resolve(path) for name, path in binds.items()}
    finally:
        sys.path.remove(root)
    banned = []
    for path in msg.get("prune", []):
        mod, _, attr = path.rpartition(".")
        if mod in sys.modules and hasattr(sys.modules[mod], attr):
            banned.append(getattr(sys.modules[mod], attr))
    for modname, mod in list(sys.modules.items()):
        if mod is not None and modname.split(".")[0] == "tfmcourse":
            for k, v in list(vars(mod).items()):
                if any(v is b for b in banned):
                    delattr(mod, k)
    return {k: v for k, v in objs.items() if v is not None and not any(v is b for b in banned)}


def _setup(msg) -> None:
    """Define the learner's code for one exercise, behind the import hook and the traps."""
    import linecache

    course = _preload_course(msg)
    sys.meta_path.insert(0, _Blocker())
    _install_traps(msg.get("forbidden", []))
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, **course}
    notes = []
    for filename, text in (msg.get("lines") or {}).items():  # whole cells: tracebacks quote the right line
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    for filename, source in msg.get("chunks", []):
        try:
            exec(compile(source, filename, "exec"), namespace)
        except BaseException as exc:
            notes.append(f"{filename}: {_summary(exc)}"[:500])
    if _VIOLATIONS:
        _send({"op": "forbidden", "what": _VIOLATIONS[0]})
        return
    name = msg["exercise"]
    if name not in namespace:
        _send({"op": "missing", "notes": notes})
        return
    _HANDLES[0] = namespace[name]
    _send({"op": "ready", "notes": notes, "callable": callable(namespace[name])})


def _worker(msg) -> None:
    """The forked grandchild: new session, limits, own directory; then serve requests."""
    import resource

    os.setsid()
    # the worker announces itself (not the zygote: two writers must never race on the pipe)
    send(_FD_OUT, {"op": "forked", "pid": os.getpid()})
    mem = int(msg.get("memory_mb", 0))
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem << 20, mem << 20))
    cpu = int(msg.get("cpu_seconds", 0))
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
    workdir = msg.get("workdir")
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
    _setup(msg)
    while True:
        req, bufs = recv(_FD_IN)
        op = req.get("op")
        if op == "call":
            _do_call(req, bufs)
        elif op in ("param_shapes", "count_parameters", "set_mode", "load_weights"):
            _do_module_op(req, bufs)
        elif op == "exit":
            os._exit(0)
        else:
            os._exit(3)


def _zygote(argv: list[str]) -> None:
    global _FD_IN, _FD_OUT
    _FD_IN, _FD_OUT = int(argv[1]), int(argv[2])
    for path in argv[3:]:
        if path not in sys.path:
            sys.path.append(path)
    import torch

    torch.set_num_threads(1)
    import torch.nn.functional

    nn = torch.nn
    for cls_name in (
        "Module",
        "Linear",
        "LayerNorm",
        "Embedding",
        "ReLU",
        "GELU",
        "Tanh",
        "Sigmoid",
        "Softmax",
        "Dropout",
        "Identity",
        "Sequential",
        "RNNCell",
        "GRUCell",
        "RNN",
        "GRU",
        "BatchNorm1d",
    ):
        _ORIGINAL[cls_name] = getattr(nn, cls_name)
    send(_FD_OUT, {"op": "hello", "pid": os.getpid()})
    while True:
        try:
            msg, _ = recv(_FD_IN)
        except (EOFError, ProtocolError):
            os._exit(0)
        if msg.get("op") != "fork":
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            with contextlib.suppress(BaseException):
                _worker(msg)
            os._exit(4)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            info = {"signal": os.WTERMSIG(status)}
        else:
            info = {"code": os.WEXITSTATUS(status)}
        send(_FD_OUT, {"op": "exited", **info})


if __name__ == "__main__":
    _zygote(sys.argv)
