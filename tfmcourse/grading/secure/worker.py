"""The untrusted side of secure grading: runs learner code, nothing else.

Executed as a script, ``python -I -S worker.py FD_IN FD_OUT SITE...``. It never
imports the course package (which is not on ``sys.path``, and an import hook
refuses it), only its neighbours :mod:`wire`, :mod:`traps` and :mod:`privileges`,
loaded by path. Process layout (one interpreter per grading process)::

    grader (trusted: runs the checks) --socket- zygote (python -I -S, torch imported once)
                                                  └─ fork per exercise → worker (setsid,
                                                     rlimits, own temp dir, import hook,
                                                     traps on forbidden built-ins, learner code)
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import traceback

if __package__:  # imported as part of the package (tests)
    from tfmcourse.grading.secure import privileges, traps, wire
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import privileges
    import traps
    import wire

    del sys.path[0]

Kind, Tag = wire.Kind, wire.Tag

FD_IN = FD_OUT = -1
HANDLES: dict[int, object] = {}  # learner objects the grader holds handles to
ORIGINAL: dict[str, type] = {}  # torch.nn classes captured before any trap
#: Objects a check keeps across calls (a module, its optimizer and scheduler), by the grader's number.
LIVE: dict[int, object] = {}
SEEN: list[int] = []  # the live modules the current call received
#: The standard optimizers and schedulers a check may pass in (rebuilt here from their settings).
OPTIMIZERS = ("SGD", "Adam", "AdamW")
SCHEDULERS = ("LinearLR",)
FORBIDDEN_OPS: dict = {}  # operators this exercise may not run: {"ops": [...], "why": ...}
#: The standard layers a check may pass in (rebuilt here from their arguments and state).
MODULE_TYPES = (
    *("Module", "Linear", "LayerNorm", "Embedding", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax"),
    *("Dropout", "Identity", "Sequential", "RNNCell", "GRUCell", "RNN", "GRU", "BatchNorm1d"),
)


def summary(exc: BaseException) -> str:
    """The exception and the learner's line it came from (the checks word it the same way)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (line {last.lineno}: {last.line.strip()})" if last.line else f" (line {last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


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
        module = isinstance(value, ORIGINAL["Module"])
        return {"$": Tag.HANDLE, "id": hid, "type": type(value).__name__, "module": module}
    return None


def send(kind: Kind, fields: dict | None = None, **payload) -> None:
    """Send a frame; each keyword argument is a value encoded into it."""
    bufs: list[bytes] = []
    fields = dict(fields or {})
    for key, value in payload.items():
        fields[key] = wire.encode(value, bufs, lambda v: encode_hook(v, bufs))
    wire.send(FD_OUT, kind, fields, bufs)


def build_module(d: dict, bufs):
    """Rebuild a standard torch.nn layer from its type name, constructor arguments and state.

    A module the grader numbered (``live``) is built once and kept: later calls load the state
    they carry into the same object, so an optimizer bound to its parameters stays bound."""
    import torch

    live = d.get("live")
    if type(live) is int and isinstance(LIVE.get(live), ORIGINAL["Module"]):
        module = LIVE[live]
        state = {k: wire.tensor_from_wire(torch, v, bufs) for k, v in d.get("state", {}).items()}
        with torch.no_grad():
            module.load_state_dict(state, strict=True)
        module.train(bool(d.get("training", False)))
        SEEN.append(live)
        return module
    cls = ORIGINAL.get(d.get("cls"))
    if cls is None or d.get("cls") in ("Module", *OPTIMIZERS, *SCHEDULERS):
        raise wire.ProtocolError(f"not a whitelisted module type: {d.get('cls')!r}")
    if d["cls"] == "Sequential":
        module = cls(*[decode(c, bufs) for c in d.get("children", [])])
    else:
        init = d.get("init", {})
        module = cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in init.items()})
    state = {k: wire.tensor_from_wire(torch, v, bufs) for k, v in d.get("state", {}).items()}
    with torch.no_grad():
        module.load_state_dict(state, strict=False)
    module.train(bool(d.get("training", False)))
    if type(live) is int:
        LIVE[live] = module
        SEEN.append(live)
    return module


def build_optimizer(d: dict):
    """A standard optimizer over the parameters of live module ``d["module"]`` (kept by ``d["live"]``)."""
    live = d.get("live")
    if type(live) is int and live in LIVE:
        return LIVE[live]
    module = LIVE.get(d.get("module"))
    if d.get("cls") not in OPTIMIZERS or not isinstance(module, ORIGINAL["Module"]) or type(live) is not int:
        raise wire.ProtocolError(f"not a whitelisted optimizer: {d.get('cls')!r}")
    hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("hyper", {}).items()}
    opt = ORIGINAL[d["cls"]](list(ORIGINAL["Module"].parameters(module)), **hyper)
    if type(d.get("initial_lr")) is float:
        opt.param_groups[0]["initial_lr"] = d["initial_lr"]
    LIVE[live] = opt
    return opt


def build_scheduler(d: dict):
    """A standard scheduler of live optimizer ``d["optimizer"]``, built as the grader's was: from
    the optimizer's initial rate, so its first factor is applied once, here."""
    live = d.get("live")
    if type(live) is int and live in LIVE:
        return LIVE[live]
    opt = LIVE.get(d.get("optimizer"))
    if d.get("cls") not in SCHEDULERS or opt is None or type(live) is not int:
        raise wire.ProtocolError(f"not a whitelisted scheduler: {d.get('cls')!r}")
    for group in opt.param_groups:
        group["lr"] = group.get("initial_lr", group["lr"])
    sched = ORIGINAL[d["cls"]](opt, **d.get("args", {}))
    LIVE[live] = sched
    return sched


def live_changes(before: dict) -> dict:
    """The parameters of the live modules this call received, for those the call changed."""
    out = {}
    for live, params in before.items():
        now = dict(ORIGINAL["Module"].named_parameters(LIVE[live]))
        if any(changed(now[k], p.dtype, tuple(p.shape), p) for k, p in params.items()):
            out[live] = {k: v.detach() for k, v in now.items()}
    return out


def decode(value, bufs):
    import torch

    def hook(d: dict):
        tag = d.get("$")
        if tag == Tag.TENSOR:
            return wire.tensor_from_wire(torch, d, bufs)
        if tag == Tag.MODULE:
            return build_module(d, bufs)
        if tag == Tag.OPTIMIZER:
            return build_optimizer(d)
        if tag == Tag.SCHEDULER:
            return build_scheduler(d)
        if tag == Tag.REMOTE:
            return Remote(int(d["id"]))
        if tag == Tag.HANDLE:
            return HANDLES[int(d["id"])]
        if tag == Tag.DTYPE and d.get("v") in wire.DTYPES:
            return getattr(torch, d["v"])
        raise wire.ProtocolError(f"unknown value tag {tag!r}")

    return wire.decode(value, bufs, hook)


def callback(rid: int, method: str, args, kwargs):
    """Call a method of a trusted grader object; the grader does the work and sends plain data."""
    fields = {"id": rid, "method": method}
    if args is None:
        send(Kind.CALLBACK, fields)
    else:
        send(Kind.CALLBACK, fields, payload={"args": tuple(args), "kwargs": dict(kwargs)})
    reply, bufs = wire.recv(FD_IN)
    if reply["op"] == Kind.RAISE:
        raise RuntimeError(str(reply.get("error")))
    value = decode(reply.get("value"), bufs)
    return (reply.get("kind"), value) if args is None else value


def changed(t, dtype, shape, before) -> bool:
    import torch

    if t.dtype != dtype or tuple(t.shape) != shape:
        return True
    a, b = t.detach(), before
    if a.is_floating_point() or a.is_complex():
        same_nan = torch.equal(torch.isnan(a), torch.isnan(b))
        return not (same_nan and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    return not bool(torch.equal(a, b))


def report_forbidden() -> bool:
    if traps.VIOLATIONS:
        send(Kind.FORBIDDEN, {"what": traps.VIOLATIONS[0]})
    return bool(traps.VIOLATIONS)


def shape_watch(shapes):
    """A torch function mode noting whether an operation produced a tensor whose last two
    dimensions are one of ``shapes`` (its ``seen``)."""
    import torch
    from torch.overrides import TorchFunctionMode

    wanted = {tuple(int(x) for x in s) for s in shapes}

    class Watch(TorchFunctionMode):
        seen = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.dim() >= 2 and tuple(t.shape[-2:]) in wanted:
                    Watch.seen = True
            return out

    return Watch()


def do_call(msg, bufs) -> None:
    import torch

    target = HANDLES.get(int(msg.get("id", 0)))
    SEEN.clear()
    payload = decode(msg.get("payload"), bufs)
    args, kwargs = tuple(payload["args"]), dict(payload["kwargs"])
    before = [
        (t, t.dtype, tuple(t.shape), t.detach().clone()) for t in wire.tensors_in(torch, (args, kwargs))
    ]
    live_before = {
        live: {k: p.detach().clone() for k, p in ORIGINAL["Module"].named_parameters(LIVE[live])}
        for live in dict.fromkeys(SEEN)
    }
    banned = FORBIDDEN_OPS.get("ops")
    watch = shape_watch(msg["watch"]) if isinstance(msg.get("watch"), list) else None
    try:
        recorder = traps.op_recorder(FORBIDDEN_OPS) if banned else contextlib.nullcontext()
        with torch.set_grad_enabled(bool(msg.get("grad", True))), recorder, watch or contextlib.nullcontext():
            result = target(*args, **kwargs)
    except NotImplementedError as exc:
        if not report_forbidden():
            send(Kind.NOT_ATTEMPTED, {"error": str(exc)[:2000]})
        return
    except BaseException as exc:
        if not report_forbidden():
            send(Kind.EXCEPTION, {"summary": summary(exc)[:4000]})
        return
    if report_forbidden():
        return
    try:
        mutated = [i for i, (t, dt, sh, b) in enumerate(before) if changed(t, dt, sh, b)]
        payload = {
            "value": result,
            "mutated": [before[i][0] for i in mutated],
            "live": live_changes(live_before),
        }
        fields = {"mutated": mutated} | ({"watched": bool(watch.seen)} if watch is not None else {})
        send(Kind.RESULT, fields, payload=payload)
    except Exception as exc:
        send(Kind.EXCEPTION, {"summary": f"its result cannot be graded ({summary(exc)})"[:4000]})


def do_module_op(msg, bufs) -> None:
    import torch

    module, op, Module = HANDLES.get(int(msg.get("id", 0))), msg["op"], ORIGINAL["Module"]
    if not isinstance(module, Module):
        send(Kind.ERROR, {"error": f"not a torch.nn.Module but {type(module).__name__}"})
        return
    try:
        params = dict(Module.named_parameters(module))
        if op == Kind.PARAM_SHAPES:
            send(Kind.OK, payload={k: list(p.shape) for k, p in params.items()})
        elif op == Kind.COUNT_PARAMETERS:
            send(Kind.OK, payload=sum(p.numel() for p in Module.parameters(module)))
        elif op == Kind.SET_MODE:
            Module.train(module, bool(msg.get("training")))
            send(Kind.OK, payload=None)
        else:
            weights = decode(msg.get("payload"), bufs)
            with torch.no_grad():
                for k, v in weights.items():
                    params[k].copy_(v)
            send(Kind.OK, payload=None)
    except BaseException as exc:
        send(Kind.EXCEPTION, {"summary": summary(exc)[:4000]})


def setup(msg) -> None:
    """Define the learner's code for one exercise, behind the import hook and the traps."""
    course = traps.preload_course(msg)
    privileges.drop(msg.get("run_as"), msg["workdir"])  # not root from here on (if the grader was)
    sys.meta_path.insert(0, traps.Blocker())
    traps.install(msg.get("forbidden", []))
    FORBIDDEN_OPS.update(msg.get("forbidden_ops") or {})
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, **course}
    notes = []
    for filename, text in (msg.get("lines") or {}).items():  # whole cells: tracebacks quote the right line
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    for filename, source in msg.get("chunks", []):
        try:
            exec(compile(source, filename, "exec"), namespace)
        except BaseException as exc:
            notes.append(f"{filename}: {summary(exc)}"[:500])
    if report_forbidden():
        return
    name = msg["exercise"]
    if name not in namespace:
        send(Kind.MISSING, {"notes": notes})
        return
    HANDLES[0] = namespace[name]
    send(Kind.READY, {"notes": notes, "callable": callable(namespace[name])})


def serve(msg) -> None:
    """The forked worker: new session, limits, own directory; then answer requests."""
    import resource

    os.setsid()
    # the worker announces itself (not the zygote: two writers must never race on the channel)
    wire.send(FD_OUT, Kind.FORKED, {"pid": os.getpid()})
    mem = int(msg.get("memory_mb", 0))
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem << 20, mem << 20))
    cpu = int(msg.get("cpu_seconds", 0))
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
    os.makedirs(msg["workdir"], exist_ok=True)
    os.chdir(msg["workdir"])
    setup(msg)
    while True:
        req, bufs = wire.recv(FD_IN)
        if req["op"] == Kind.CALL:
            do_call(req, bufs)
        elif req["op"] in wire.MODULE_OPS:
            do_module_op(req, bufs)
        else:
            os._exit(3)


def zygote(argv: list[str]) -> None:
    global FD_IN, FD_OUT
    FD_IN, FD_OUT = int(argv[1]), int(argv[2])
    for path in argv[3:]:
        if path not in sys.path:
            sys.path.append(path)
    import torch
    import torch.nn.functional  # imported once, before any fork

    torch.set_num_threads(1)
    ORIGINAL.update({name: getattr(torch.nn, name) for name in MODULE_TYPES})
    ORIGINAL.update({name: getattr(torch.optim, name) for name in OPTIMIZERS})
    ORIGINAL.update({name: getattr(torch.optim.lr_scheduler, name) for name in SCHEDULERS})
    with contextlib.suppress(Exception):  # orphans of learner code become our children (Linux)
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    devnull = os.open(os.devnull, os.O_WRONLY)  # the startup log ends here: nothing later reaches it
    os.dup2(devnull, 2)
    os.close(devnull)
    wire.send(FD_OUT, Kind.HELLO, {"pid": os.getpid()})
    while True:
        try:
            msg, _ = wire.recv(FD_IN)
        except (EOFError, wire.ProtocolError):
            os._exit(0)
        if msg["op"] != Kind.FORK:
            os._exit(0)
        reap()
        pid = os.fork()
        if pid == 0:
            with contextlib.suppress(BaseException):
                serve(msg)
            os._exit(4)
        _, status = os.waitpid(pid, 0)
        info = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"code": os.WEXITSTATUS(status)}
        wire.send(FD_OUT, Kind.EXITED, info)
        reap()


def reap() -> None:
    """Collect every child that has ended (orphans the grader killed, adopted as their subreaper)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


if __name__ == "__main__":
    zygote(sys.argv)
