"""Worker side: the policy enforced at run time (import hook, traps, the course's earlier lessons).

Loaded by the worker (never imports the course). A trap replaces every alias
of a forbidden object in every loaded ``torch`` module; calling it records the
use, which the worker reports as ``forbidden`` whatever the learner's code
does with the exception.
"""

from __future__ import annotations

import contextlib
import pkgutil
import sys

VIOLATIONS: list[str] = []  # forbidden things the learner's code touched


class Blocker:
    """Import hook: the course package (and its tests) cannot be imported by learner code."""

    BLOCKED = ("tfmcourse", "tests")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED and name not in sys.modules:
            VIOLATIONS.append(f"imports {name}, part of the course's own reference code")
            raise ImportError(
                f"secure grading: importing {name!r} is not allowed "
                "(write the exercise yourself, without the course's reference code)"
            )
        return None


def resolve(qualname: str):
    """The object a dotted name stands for, or None."""
    try:
        return pkgutil.resolve_name(qualname)
    except Exception:
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
        VIOLATIONS.append(f"uses {what}")
        return RuntimeError(f"secure grading: {what} is not allowed in this exercise: {entry.get('why', '')}")

    if isinstance(orig, type):

        def __init__(self, *args, **kwargs):
            if _hit(entry, args, kwargs):
                raise record()
            orig.__init__(self, *args, **kwargs)

        namespace = {"__init__": __init__, "__module__": orig.__module__, "__qualname__": orig.__qualname__}
        return type(orig.__name__, (orig,), namespace)

    def trap(*args, **kwargs):
        if _hit(entry, args, kwargs):
            raise record()
        return orig(*args, **kwargs)

    trap.__name__ = getattr(orig, "__name__", "trap")
    trap.__doc__ = getattr(orig, "__doc__", None)
    return trap


def install(entries: list[dict]) -> None:
    """Replace every alias of each forbidden torch object, in every loaded torch module."""
    for entry in entries:
        orig = resolve(entry["qualname"])
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


def preload_course(msg) -> dict:
    """Import the earlier lessons' reference code the exercise may use, then prune the rest.

    The course package is not on ``sys.path``: it is imported from ``course_root``
    only here, before the import hook closes it; every reference implementation of
    this lesson and later ones (``prune``) is then deleted from the loaded modules.
    """
    binds = msg.get("bind") or {}
    if not binds:
        return {}
    sys.path.insert(0, msg["course_root"])
    try:
        objs = {name: resolve(path) for name, path in binds.items()}
    finally:
        sys.path.remove(msg["course_root"])
    banned = [obj for obj in map(resolve, msg.get("prune", [])) if obj is not None]
    for modname, mod in list(sys.modules.items()):
        if mod is not None and modname.split(".")[0] == "tfmcourse":
            for k, v in list(vars(mod).items()):
                if any(v is b for b in banned):
                    delattr(mod, k)
    return {k: v for k, v in objs.items() if v is not None and not any(v is b for b in banned)}


def op_recorder(banned: dict):
    """A torch dispatch mode that refuses the operators in ``banned["ops"]``, however they were reached."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops, why = frozenset(banned.get("ops") or ()), banned.get("why", "")

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func.overloadpacket)
            if name in ops:
                VIOLATIONS.append(f"uses {name} (the operator torch runs for it): {why}")
                raise RuntimeError(f"secure grading: {name} is not allowed in this exercise: {why}")
            return func(*args, **(kwargs or {}))

    return Recorder()


def warm_up() -> None:
    """Run a few operators under :func:`op_recorder` once, in the interpreter that forks the workers:
    torch's first dispatch through a Python mode costs about a second (imports, caches), which every
    forked worker then inherits instead of paying again for each exercise."""
    import torch

    with op_recorder({"ops": ()}):
        (torch.ones(2, 3) @ torch.ones(3, 2)).softmax(-1).sum()
