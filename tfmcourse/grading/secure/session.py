"""The conversation with one exercise's worker: the only module that speaks the protocol.

Frames go over a socket pair (:mod:`~tfmcourse.grading.secure.wire`), each
read and write within the exercise's remaining time budget and each frame
within a size cap. The proxies a check holds ask the session to call the
learner's code; the worker may call back the trusted objects a check passed
in (what it may do with them: :mod:`~tfmcourse.grading.secure.callbacks`);
what a call changed comes back checked (:mod:`~tfmcourse.grading.secure.replies`).
Anything malformed ends the exercise and marks the session broken, so the
sandbox restarts its interpreter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tfmcourse.checks._core import CheckFailed, ExerciseNotAttempted
from tfmcourse.checks._i18n import tr
from tfmcourse.grading.secure import callbacks, memory, proxy, replies, wire
from tfmcourse.grading.secure.wire import Kind, ProtocolError


class GradingAborted(BaseException):
    """Grading of one exercise stops here (limit hit, process died, forbidden use).

    A ``BaseException`` so that no ``except Exception`` in a check can swallow it.
    """

    def __init__(self, reason: str, status: str = "failed", message: str = ""):
        super().__init__(reason)
        self.reason, self.status, self.message = reason, status, message


def hello(fd: int, timeout: float) -> int:
    """Wait for a freshly started interpreter to say it is ready; its pid."""
    msg, _ = wire.recv(fd, time.monotonic() + timeout, 1 << 16)
    if msg["op"] != Kind.HELLO or type(msg.get("pid")) is not int:
        raise RuntimeError("the sandbox did not start")
    return msg["pid"]


class Session:
    """The conversation with one exercise's worker process."""

    def __init__(self, sandbox, name: str, timeout: float, workdir: Path):
        self.sandbox, self.name, self.timeout, self.workdir = sandbox, name, timeout, workdir
        # wall-clock seconds the learner's process may still take; only time spent waiting for it
        # counts (the trusted check's own work in this process does not)
        self.budget = timeout
        self.pid = 0
        self.broken = self.finished = False
        self.remote: dict[int, Any] = {}  # trusted objects the worker may call back
        self.live: dict[int, Any] = {}  # modules, optimizers, schedulers the worker keeps (proxy.live_spec)
        self.watchdog: memory.Watchdog | None = None
        self.max_bytes = max(64, sandbox.memory_mb) << 20

    # -- frames, with the time budget
    def _kill(self) -> None:
        """Kill the worker's process group, once, while the zygote has not reported its exit
        (until then its pid, which is its process group id, cannot belong to anyone else)."""
        pid, self.pid = self.pid, 0
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def _abort(self, reason: str) -> GradingAborted:
        self.broken = True
        self._kill()
        return GradingAborted(reason)

    def _malformed(self, what: Any) -> GradingAborted:
        return self._abort(f"the learner's process sent malformed data ({what})")

    def _timed(self, io):
        start = time.monotonic()
        try:
            return io(start + max(self.budget, 0.0))
        except TimeoutError:
            raise self._abort(
                f"time limit exceeded: the exercise used more than {self.timeout:g} s "
                "(an infinite loop, or far too slow)"
            ) from None
        except (EOFError, OSError, ProtocolError, struct.error, ValueError) as exc:
            raise self._abort(
                f"the learner's process broke the grading channel ({type(exc).__name__})"
            ) from None
        finally:
            self.budget -= time.monotonic() - start

    def recv(self) -> tuple[dict, list[bytes]]:
        return self._timed(lambda deadline: wire.recv(self.sandbox.fd_from, deadline, self.max_bytes))

    def send(self, kind: Kind, fields: dict | None = None, **payload: Any) -> None:
        bufs: list[bytes] = []
        fields = dict(fields or {})
        for key, value in payload.items():
            fields[key] = self.encode(value, bufs)
        self._timed(lambda deadline: wire.send(self.sandbox.fd_to, kind, fields, bufs, deadline))

    def died(self, reply: dict) -> GradingAborted:
        self.finished = True
        self.pid = 0  # reaped by the zygote: never signal that pid again
        sig = reply.get("signal")
        if self.watchdog is not None and self.watchdog.exceeded:
            used = self.watchdog.exceeded >> 20
            return GradingAborted(
                f"memory limit exceeded: its processes together used {used} MiB "
                f"(limit {self.sandbox.memory_mb} MiB per exercise)"
            )
        if sig == signal.SIGXCPU:
            return GradingAborted(f"CPU time limit exceeded ({self.timeout:g} s)")
        if sig is not None:
            return GradingAborted(f"the process was killed by signal {sig} ({_signame(sig)})")
        return GradingAborted(
            f"the process exited (exit code {reply.get('code')}) while running the learner's code "
            "(os._exit, sys.exit, a crash, or out of memory)"
        )

    def fork(self, fields: dict) -> None:
        """Ask the interpreter for this exercise's worker; learn its pid."""
        self.send(Kind.FORK, fields)
        reply, _ = self.recv()
        if reply["op"] == Kind.EXITED:
            raise self.died(reply)
        if reply["op"] != Kind.FORKED or type(reply.get("pid")) is not int:
            self.broken = True
            raise GradingAborted("the grading sandbox did not answer", status="error")
        self.pid = reply["pid"]
        self.watchdog = memory.Watchdog(self.pid, self.sandbox.memory_mb << 20)

    # -- values
    def encode(self, value: Any, bufs: list[bytes]) -> Any:
        return wire.encode(value, bufs, lambda v: proxy.encode_hook(self, v, bufs))

    def decode(self, value: Any, bufs: list[bytes]) -> Any:
        try:
            return wire.decode(value, bufs, lambda d: proxy.decode_hook(self, d, bufs))
        except (ProtocolError, KeyError, TypeError, ValueError, RecursionError) as exc:
            raise self._malformed(exc) from None

    # -- requests
    def request(self, kind: Kind, fields: dict, **payload: Any) -> tuple[dict, Any]:
        """Send a request, serve the worker's callbacks, return (reply, its decoded payload)."""
        self.send(kind, fields, **payload)
        return self.answer()

    def answer(self) -> tuple[dict, Any]:
        """The next reply that is not a callback (callbacks are served on the way)."""
        while True:
            reply, bufs = self.recv()
            if reply["op"] == Kind.EXITED:
                raise self.died(reply)
            if reply["op"] == Kind.FORBIDDEN:
                raise GradingAborted(f"{reply.get('what')} — not allowed in this exercise")
            if reply["op"] != Kind.CALLBACK:
                return reply, self.decode(reply.get("payload"), bufs)
            self._serve_callback(reply, bufs)

    def ready(self) -> str | None:
        """Wait for the learner's code to be defined: None, or why defining it failed."""
        reply, _ = self.answer()
        if reply["op"] == Kind.MISSING:
            notes = reply.get("notes")
            return "; ".join(str(n) for n in notes)[:1500] if isinstance(notes, list) else "unknown"
        if reply["op"] != Kind.READY:
            raise self._abort(f"the learner's process answered {reply['op'].value!r}")
        return None

    def live_number(self, obj: Any, create: bool = True) -> int | None:
        """The number the worker knows ``obj`` by (a new one if ``create``), or None."""
        for n, o in self.live.items():
            if o is obj:
                return n
        if not create:
            return None
        n = len(self.live) + 1
        self.live[n] = obj
        return n

    def call(self, hid: int, name: str, args: tuple, kwargs: dict, watch: list | None = None) -> Any:
        """Call learner object ``hid``; its exceptions become check results, as in a notebook.

        With ``watch`` (pairs of sizes), returns (value, whether any torch operation of the call
        produced a tensor whose last two dimensions are one of the pairs)."""
        sent = wire.tensors_in(torch, (args, kwargs))
        fields = {"id": hid, "grad": torch.is_grad_enabled()}
        if watch is not None:
            fields["watch"] = [[int(a), int(b)] for a, b in watch]
        self.send(Kind.CALL, fields, payload={"args": tuple(args), "kwargs": dict(kwargs)})
        reply, value = self.answer()
        if reply["op"] == Kind.RESULT and isinstance(value, dict):
            try:
                replies.apply_mutations(sent, reply.get("mutated"), value.get("mutated"))
                replies.apply_live(self.live, value.get("live"))
                if watch is None:
                    return value.get("value")
                return value.get("value"), replies.watched(reply.get("watched"))
            except ProtocolError as exc:
                raise self._malformed(exc) from None
        if reply["op"] == Kind.NOT_ATTEMPTED:
            error = str(reply.get("error"))[:2000]
            raise ExerciseNotAttempted(tr("{name}: not attempted yet ({error})", name=name, error=error))
        if reply["op"] == Kind.EXCEPTION:
            summary = str(reply.get("summary"))[:4000]
            failure = CheckFailed(tr("{name}: calling it raised {error}", name=name, error=summary))
            failure.learner_summary = summary  # what the learner's code raised, in every language
            raise failure
        raise self._abort(f"the learner's process answered {reply['op'].value!r}")

    def module_op(self, hid: int, label: str, kind: Kind, arg: Any = None) -> Any:
        """One of the module requests (:data:`wire.MODULE_OPS`) on learner module ``hid``."""
        if kind == Kind.SET_MODE:
            reply, value = self.request(kind, {"id": hid, "training": bool(arg)})
        elif kind == Kind.LOAD_WEIGHTS:
            reply, value = self.request(kind, {"id": hid}, payload=arg)
        else:
            reply, value = self.request(kind, {"id": hid})
        if reply["op"] != Kind.OK:
            why = reply.get("error") or reply.get("summary") or "not a torch.nn.Module"
            raise CheckFailed(f"{label}: {str(why)[:2000]}")
        try:
            return replies.module_answer(kind, value)
        except ProtocolError as exc:
            raise self._malformed(exc) from None

    def _serve_callback(self, req: dict, bufs: list[bytes]) -> None:
        """The learner's code used a trusted object the check passed in (e.g. greedy_decode's model):
        read an attribute (no payload) or called a method, as :mod:`.callbacks` allows."""
        obj, method = self.remote.get(req.get("id")), req.get("method")
        try:
            if "payload" not in req:  # attribute lookup
                kind, value = callbacks.look_up(obj, method)
                self._reply(kind, value, plain_only=True)
                return
            callbacks.check_call(obj, method)
            payload = self.decode(req["payload"], bufs)
            result = callbacks.invoke(obj, method, payload["args"], payload["kwargs"])
        except GradingAborted:
            raise
        except Exception as exc:
            self.send(Kind.RAISE, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._reply("value", result)

    def _reply(self, kind: str, value: Any, plain_only: bool = False) -> None:
        bufs: list[bytes] = []

        def hook(v: Any) -> dict | None:
            if type(v) in (torch.Tensor, nn.Parameter):
                return wire.tensor_to_wire(torch, v.detach().clone(), bufs)
            if plain_only and type(v) not in (torch.dtype, torch.Size):
                return wire.opaque(v)
            return proxy.encode_hook(self, v, bufs)

        fields = {"kind": kind, "value": wire.encode(value, bufs, hook)}
        self._timed(lambda deadline: wire.send(self.sandbox.fd_to, Kind.RETURN, fields, bufs, deadline))

    def close(self) -> None:
        """End the worker: kill its process group (and whatever it started), collect its exit."""
        if self.watchdog is not None:
            self.watchdog.stop()
        self.sandbox.kill_strays()
        if not self.finished:
            self._kill()
            if not self.broken:
                try:
                    reply, _ = wire.recv(self.sandbox.fd_from, time.monotonic() + 10, 1 << 20)
                    self.broken = reply["op"] != Kind.EXITED
                except Exception:
                    self.broken = True
        if self.broken:
            self.sandbox.stop()  # the channel may hold half a message: a fresh interpreter next time
        shutil.rmtree(self.workdir, ignore_errors=True)


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown"
