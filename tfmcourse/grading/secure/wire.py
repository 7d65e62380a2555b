"""The wire between the grader and the worker that runs learner code: frames of JSON and raw bytes.

Imported by both sides, so it imports only the standard library (tensors are
converted with the ``torch`` the caller already imported). Nothing here ever
unpickles or evaluates what it reads.

A frame is ``b"TFMG" | u32 JSON length | u32 number of buffers``, the JSON
object (UTF-8), then each buffer as ``u64 length | bytes``. Every frame has a
``"op"``: one of :class:`Kind`. Values inside a frame are plain JSON plus
tagged objects ``{"$": tag, ...}``: ``tuple``, ``dict`` (keys that are not
strings), ``float`` (nan and infinities), ``tensor`` (dtype, shape and the
index of a raw-bytes buffer), ``opaque`` (anything else: only its type name
travels), and the handles of :class:`Tag`.
"""

from __future__ import annotations

import enum
import json
import math
import os
import select
import struct
import time

MAGIC = b"TFMG"
HEAD = struct.Struct("<4sII")
LEN = struct.Struct("<Q")
MAX_DEPTH = 32
MAX_BUFFERS = 100_000


class Kind(enum.StrEnum):
    """Every kind of frame. ``>`` grader to worker, ``<`` worker to grader."""

    HELLO = "hello"  # < the interpreter is up, torch imported
    FORK = "fork"  # > start a worker for one exercise (its code, limits, folder)
    FORKED = "forked"  # < the worker's pid
    READY = "ready"  # < the exercise is defined
    MISSING = "missing"  # < defining it failed (the errors)
    FORBIDDEN = "forbidden"  # < learner code used what this exercise forbids
    EXITED = "exited"  # < the worker process ended (exit code or signal)
    CALL = "call"  # > call a learner object
    RESULT = "result"  # < its return value (and the inputs it changed in place)
    NOT_ATTEMPTED = "not_attempted"  # < it raised NotImplementedError
    EXCEPTION = "exception"  # < it raised something else
    PARAM_SHAPES = "param_shapes"  # > a learner module's parameter shapes
    COUNT_PARAMETERS = "count_parameters"  # > their number of elements
    SET_MODE = "set_mode"  # > train() or eval()
    LOAD_WEIGHTS = "load_weights"  # > copy given tensors into its parameters
    OK = "ok"  # < answer to the four module requests
    ERROR = "error"  # < a module request on something that is not a module
    CALLBACK = "callback"  # < learner code uses a trusted object the check passed in
    RETURN = "return"  # > the callback's result
    RAISE = "raise"  # > the callback raised


MODULE_OPS = (Kind.PARAM_SHAPES, Kind.COUNT_PARAMETERS, Kind.SET_MODE, Kind.LOAD_WEIGHTS)


class Tag(enum.StrEnum):
    """Tagged values besides plain JSON."""

    TUPLE = "tuple"
    DICT = "dict"
    FLOAT = "float"
    TENSOR = "tensor"
    OPAQUE = "opaque"
    DTYPE = "dtype"
    HANDLE = "handle"  # a learner object living in the worker
    REMOTE = "remote"  # a trusted object living in the grader
    MODULE = "module"  # a standard torch.nn layer, rebuilt from its arguments and state
    OPTIMIZER = "optimizer"  # a standard optimizer over a rebuilt module's parameters
    SCHEDULER = "scheduler"  # a standard learning-rate scheduler of a rebuilt optimizer


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame."""


# ----------------------------------------------------------------------------- framing


def _deadline_left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def frame(kind: Kind, fields: dict | None = None, bufs: list[bytes] = ()) -> bytes:
    """The bytes of one frame."""
    obj = {"op": Kind(kind).value, **(fields or {})}
    head = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode()
    parts = [HEAD.pack(MAGIC, len(head), len(bufs)), head]
    for b in bufs:
        parts += [LEN.pack(len(b)), b]
    return b"".join(parts)


def send(
    fd: int, kind: Kind, fields: dict | None = None, bufs: list[bytes] = (), deadline: float | None = None
) -> None:
    """Write one frame; ``TimeoutError`` if the reader does not take it before ``deadline``."""
    data = memoryview(frame(kind, fields, bufs))
    while data:
        left = _deadline_left(deadline)
        if left is not None and not select.select([], [fd], [], left)[1]:
            raise TimeoutError
        data = data[os.write(fd, data[: select.PIPE_BUF] if deadline is not None else data) :]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        left = _deadline_left(deadline)
        if left is not None and not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd: int, deadline: float | None = None, max_bytes: int = 1 << 62) -> tuple[dict, list[bytes]]:
    """Read one frame: (fields with ``"op"`` a :class:`Kind`, buffers).

    ``TimeoutError`` past ``deadline``, ``EOFError`` if the writer is gone,
    ``ProtocolError`` for anything malformed or larger than ``max_bytes``.
    """
    magic, n_json, n_bufs = HEAD.unpack(_read_exact(fd, HEAD.size, deadline))
    if magic != MAGIC or n_json > max_bytes or n_bufs > MAX_BUFFERS:
        raise ProtocolError("bad frame header")
    try:
        obj = json.loads(_read_exact(fd, n_json, deadline).decode())
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a frame must hold a JSON object")
    try:
        obj["op"] = Kind(obj.get("op"))
    except ValueError:
        raise ProtocolError(f"unknown message kind {str(obj.get('op'))[:40]!r}") from None
    total, bufs = n_json, []
    for _ in range(n_bufs):
        (n,) = LEN.unpack(_read_exact(fd, LEN.size, deadline))
        total += n
        if total > max_bytes:
            raise ProtocolError(f"message larger than {max_bytes} bytes")
        bufs.append(_read_exact(fd, n, deadline))
    return obj, bufs


# ----------------------------------------------------------------------------- values

DTYPES = (
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


def opaque(value) -> dict:
    return {"$": Tag.OPAQUE.value, "type": type(value).__name__}


def tensor_to_wire(torch, t, bufs: list[bytes]) -> dict:
    """A plain tensor's dtype and shape; its bytes appended to ``bufs``."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    name = str(t.dtype).replace("torch.", "")
    if name not in DTYPES:
        return {"$": Tag.OPAQUE.value, "type": f"tensor of dtype {name}"}
    flat = t.contiguous().reshape(-1)
    bufs.append(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return {"$": Tag.TENSOR.value, "dtype": name, "shape": list(t.shape), "buf": len(bufs) - 1}


def tensor_from_wire(torch, d: dict, bufs: list[bytes]):
    name, shape, i = d.get("dtype"), d.get("shape"), d.get("buf")
    if (
        name not in DTYPES
        or not isinstance(shape, list)
        or len(shape) > 16
        or not all(type(s) is int and 0 <= s < 2**40 for s in shape)
        or type(i) is not int
        or not 0 <= i < len(bufs)
    ):
        raise ProtocolError("malformed tensor")
    dtype = getattr(torch, name)
    numel = math.prod(shape)
    raw = bufs[i]
    if len(raw) != numel * torch.empty((), dtype=dtype).element_size():
        raise ProtocolError("tensor data does not match its dtype and shape")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


def encode(value, bufs: list[bytes], hook, depth: int = 0):
    """JSON-able form of ``value``; ``hook(value)`` handles what plain data cannot (None: opaque)."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**63 else {"$": Tag.OPAQUE.value, "type": "huge int"}
    if type(value) is float:
        return value if math.isfinite(value) else {"$": Tag.FLOAT.value, "v": repr(value)}
    if isinstance(value, float):  # a float subclass (e.g. numpy.float64): its plain value
        return encode(float(value), bufs, hook, depth + 1)
    if isinstance(value, int) and not isinstance(value, bool):
        return encode(int(value), bufs, hook, depth + 1)
    if type(value) is tuple:
        return {"$": Tag.TUPLE.value, "items": [encode(v, bufs, hook, depth + 1) for v in value]}
    if type(value) is list:
        return [encode(v, bufs, hook, depth + 1) for v in value]
    if type(value) is dict and all(type(k) in (str, int) for k in value):
        items = [[k, encode(v, bufs, hook, depth + 1)] for k, v in value.items()]
        return {"$": Tag.DICT.value, "items": items}
    out = hook(value)
    return opaque(value) if out is None else out


def decode(value, bufs: list[bytes], hook, depth: int = 0):
    """Inverse of :func:`encode`; ``hook(dict)`` rebuilds tagged values other than containers."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [decode(v, bufs, hook, depth + 1) for v in value]
    if type(value) is not dict:
        raise ProtocolError("unexpected JSON value")
    tag = value.get("$")
    if tag == Tag.TUPLE and type(value.get("items")) is list:
        return tuple(decode(v, bufs, hook, depth + 1) for v in value["items"])
    if tag == Tag.DICT and type(value.get("items")) is list:
        out = {}
        for item in value["items"]:
            if not (type(item) is list and len(item) == 2 and type(item[0]) in (str, int)):
                raise ProtocolError("malformed dict")
            out[item[0]] = decode(item[1], bufs, hook, depth + 1)
        return out
    if tag == Tag.FLOAT:
        if value.get("v") not in ("nan", "inf", "-inf"):
            raise ProtocolError("malformed float")
        return float(value["v"])
    return hook(value)


def tensors_in(torch, values) -> list:
    """The plain tensors among (nested) arguments, in a fixed order.

    Both sides use this one walk, so the tensors they pair up when in-place
    changes are copied back always match.
    """
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
