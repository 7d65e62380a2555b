"""Worker side: the worker's end of the socket, and the values that go through it.

Loaded by the worker (never imports the course). Learner values leave as plain
data (tensors, numbers, containers) or as handles to objects that stay here
(:data:`HANDLES`); values from the grader come back as plain data, rebuilt
standard torch objects (:mod:`rebuild`), the learner objects those handles
stand for, or a :class:`Remote` for a trusted object the check passed in.
"""

from __future__ import annotations

if __package__:  # imported as part of the package (tests)
    from tfmcourse.grading.secure import rebuild, wire
else:  # loaded by the worker, with its folder on sys.path
    import rebuild
    import wire

Kind, Tag = wire.Kind, wire.Tag

FD_IN = FD_OUT = -1  # the socket to the grader, read and written (set when the interpreter starts)
HANDLES: dict[int, object] = {}  # learner objects the grader holds handles to


class Remote:
    """A trusted object living in the grader (e.g. the scripted model of greedy_decode)."""

    __slots__ = ("_rid",)

    def __init__(self, rid: int):
        object.__setattr__(self, "_rid", rid)

    def __call__(self, *args, **kwargs):
        return callback(self._rid, "__call__", args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        kind, value = callback(self._rid, name, None, None)
        if kind == "method":
            if name in ("parameters", "named_parameters"):  # generators in torch: keep next(...) working
                return lambda *a, **k: iter(callback(self._rid, name, a, k))
            return lambda *a, **k: callback(self._rid, name, a, k)
        return value

    def __repr__(self):
        return f"<remote object {self._rid}>"


def encode_hook(value, bufs):
    """Learner values for the grader: plain data only, learner objects as handles."""
    import torch

    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return wire.tensor_to_wire(torch, value, bufs)
    if isinstance(value, torch.Tensor):
        return {"$": Tag.OPAQUE, "type": f"{type(value).__name__} (a torch.Tensor subclass)"}
    if isinstance(value, Remote):
        return {"$": Tag.REMOTE, "id": value._rid}
    if type(value) is torch.dtype:
        return {"$": Tag.DTYPE, "v": str(value).replace("torch.", "")}
    if type(value) is torch.Size:
        return {"$": Tag.TUPLE, "items": [int(s) for s in value]}
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        item = value.item()  # a numpy scalar (numbers.Real in the notebook): its plain value
        if type(item) in (bool, int, float):
            return item
    if isinstance(value, torch.nn.Module) or callable(value):
        hid = len(HANDLES) + 1
        HANDLES[hid] = value
        module = isinstance(value, rebuild.ORIGINAL["Module"])
        return {"$": Tag.HANDLE, "id": hid, "type": type(value).__name__, "module": module}
    return None


def decode(value, bufs):
    """A value from the grader, as the learner's code receives it."""
    import torch

    def hook(d: dict):
        tag = d.get("$")
        if tag == Tag.TENSOR:
            return wire.tensor_from_wire(torch, d, bufs)
        if tag == Tag.MODULE:
            return rebuild.build_module(d, bufs)
        if tag == Tag.OPTIMIZER:
            return rebuild.build_optimizer(d)
        if tag == Tag.SCHEDULER:
            return rebuild.build_scheduler(d)
        if tag == Tag.REMOTE:
            return Remote(int(d["id"]))
        if tag == Tag.HANDLE:
            return HANDLES[int(d["id"])]
        if tag == Tag.DTYPE and d.get("v") in wire.DTYPES:
            return getattr(torch, d["v"])
        raise wire.ProtocolError(f"unknown value tag {tag!r}")

    return wire.decode(value, bufs, hook)


def send(kind: Kind, fields: dict | None = None, **payload) -> None:
    """Send a frame; each keyword argument is a value encoded into it."""
    bufs: list[bytes] = []
    fields = dict(fields or {})
    for key, value in payload.items():
        fields[key] = wire.encode(value, bufs, lambda v: encode_hook(v, bufs))
    wire.send(FD_OUT, kind, fields, bufs)


def recv() -> tuple[dict, list[bytes]]:
    """The next frame from the grader."""
    return wire.recv(FD_IN)


def callback(rid: int, method: str, args, kwargs):
    """Call a method of a trusted grader object; the grader does the work and sends plain data."""
    fields = {"id": rid, "method": method}
    if args is None:
        send(Kind.CALLBACK, fields)
    else:
        send(Kind.CALLBACK, fields, payload={"args": tuple(args), "kwargs": dict(kwargs)})
    reply, bufs = recv()
    if reply["op"] == Kind.RAISE:
        raise RuntimeError(str(reply.get("error")))
    value = decode(reply.get("value"), bufs)
    return (reply.get("kind"), value) if args is None else value
