"""The untrusted side of secure grading: runs learner code, nothing else.

Executed as a script, ``python -I -S worker.py FD_IN FD_OUT SITE...``. It never
imports the course package (which is not on ``sys.path``, and an import hook
refuses it), only its neighbours, loaded by path and as plain as it is (the
standard library and torch): :mod:`wire` (frames), :mod:`channel` (its end of
the socket), :mod:`rebuild` (the standard torch objects a check passes in),
:mod:`traps` (the policy at run time) and :mod:`privileges` (giving up root).
Process layout (one interpreter per grading process)::

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
    from tfmcourse.grading.secure import channel, privileges, rebuild, traps, wire
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import channel
    import privileges
    import rebuild
    import traps
    import wire

    del sys.path[0]

Kind = wire.Kind
send = channel.send
FORBIDDEN_OPS: dict = {}  # operators this exercise may not run: {"ops": [...], "why": ...}


def summary(exc: BaseException) -> str:
    """The exception and the learner's line it came from (the checks word it the same way)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (line {last.lineno}: {last.line.strip()})" if last.line else f" (line {last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


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

    target = channel.HANDLES.get(int(msg.get("id", 0)))
    rebuild.SEEN.clear()
    payload = channel.decode(msg.get("payload"), bufs)
    args, kwargs = tuple(payload["args"]), dict(payload["kwargs"])
    before = [
        (t, t.dtype, tuple(t.shape), t.detach().clone()) for t in wire.tensors_in(torch, (args, kwargs))
    ]
    live_before = rebuild.live_parameters()
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
        mutated = [i for i, (t, dt, sh, b) in enumerate(before) if rebuild.changed(t, dt, sh, b)]
        payload = {
            "value": result,
            "mutated": [before[i][0] for i in mutated],
            "live": rebuild.live_changes(live_before),
        }
        fields = {"mutated": mutated} | ({"watched": bool(watch.seen)} if watch is not None else {})
        send(Kind.RESULT, fields, payload=payload)
    except Exception as exc:
        send(Kind.EXCEPTION, {"summary": f"its result cannot be graded ({summary(exc)})"[:4000]})


def do_module_op(msg, bufs) -> None:
    import torch

    module, op, Module = channel.HANDLES.get(int(msg.get("id", 0))), msg["op"], rebuild.ORIGINAL["Module"]
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
            weights = channel.decode(msg.get("payload"), bufs)
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
    channel.HANDLES[0] = namespace[name]
    send(Kind.READY, {"notes": notes, "callable": callable(namespace[name])})


def serve(msg) -> None:
    """The forked worker: new session, limits, own directory; then answer requests."""
    import resource

    os.setsid()
    # the worker announces itself (not the zygote: two writers must never race on the channel)
    wire.send(channel.FD_OUT, Kind.FORKED, {"pid": os.getpid()})
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
        req, bufs = channel.recv()
        if req["op"] == Kind.CALL:
            do_call(req, bufs)
        elif req["op"] in wire.MODULE_OPS:
            do_module_op(req, bufs)
        else:
            os._exit(3)


def zygote(argv: list[str]) -> None:
    channel.FD_IN, channel.FD_OUT = int(argv[1]), int(argv[2])
    for path in argv[3:]:
        if path not in sys.path:
            sys.path.append(path)
    import torch
    import torch.nn.functional  # imported once, before any fork

    torch.set_num_threads(1)
    rebuild.capture()
    traps.warm_up()  # the dispatcher-level recorder, ready before any fork
    with contextlib.suppress(Exception):  # orphans of learner code become our children (Linux)
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    devnull = os.open(os.devnull, os.O_WRONLY)  # the startup log ends here: nothing later reaches it
    os.dup2(devnull, 2)
    os.close(devnull)
    wire.send(channel.FD_OUT, Kind.HELLO, {"pid": os.getpid()})
    while True:
        try:
            msg, _ = channel.recv()
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
        wire.send(channel.FD_OUT, Kind.EXITED, info)
        reap()


def reap() -> None:
    """Collect every child that has ended (orphans the grader killed, adopted as their subreaper)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


if __name__ == "__main__":
    zygote(sys.argv)
