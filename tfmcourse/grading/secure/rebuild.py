"""Worker side: the standard torch objects a check passes in, rebuilt from their settings.

Loaded by the worker (never imports the course). A standard layer arrives as
its type name, constructor arguments and state; an optimizer or a scheduler as
its type and settings over a module rebuilt before. Only the classes captured
by :func:`capture` (before any trap is installed) are ever built. Objects the
grader numbered (``live``) are kept for the whole exercise, and after each call
the parameters the call changed go back to the grader (:func:`live_changes`).
"""

from __future__ import annotations

if __package__:  # imported as part of the package (tests)
    from tfmcourse.grading.secure import wire
else:  # loaded by the worker, with its folder on sys.path
    import wire

ORIGINAL: dict[str, type] = {}  # torch.nn classes captured before any trap
#: Objects a check keeps across calls (a module, its optimizer and scheduler), by the grader's number.
LIVE: dict[int, object] = {}
SEEN: list[int] = []  # the live modules the current call received
#: The standard optimizers and schedulers a check may pass in (rebuilt here from their settings).
OPTIMIZERS = ("SGD", "Adam", "AdamW")
SCHEDULERS = ("LinearLR",)
#: The standard layers a check may pass in (rebuilt here from their arguments and state).
MODULE_TYPES = (
    *("Module", "Linear", "LayerNorm", "Embedding", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax"),
    *("Dropout", "Identity", "Sequential", "RNNCell", "GRUCell", "RNN", "GRU", "BatchNorm1d"),
)


def capture() -> None:
    """Keep the classes above as torch defines them (called once torch is imported)."""
    import torch

    ORIGINAL.update({name: getattr(torch.nn, name) for name in MODULE_TYPES})
    ORIGINAL.update({name: getattr(torch.optim, name) for name in OPTIMIZERS})
    ORIGINAL.update({name: getattr(torch.optim.lr_scheduler, name) for name in SCHEDULERS})


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
    if d["cls"] == "Sequential":  # its children are layer specs too
        module = cls(*[build_module(c, bufs) for c in d.get("children", [])])
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


def changed(t, dtype, shape, before) -> bool:
    """Whether tensor ``t`` differs from what it was (``dtype``, ``shape``, a copy ``before``)."""
    import torch

    if t.dtype != dtype or tuple(t.shape) != shape:
        return True
    a, b = t.detach(), before
    if a.is_floating_point() or a.is_complex():
        same_nan = torch.equal(torch.isnan(a), torch.isnan(b))
        return not (same_nan and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    return not bool(torch.equal(a, b))


def live_parameters() -> dict:
    """A copy of the parameters of each live module the current call received, before the call."""
    return {
        live: {k: p.detach().clone() for k, p in ORIGINAL["Module"].named_parameters(LIVE[live])}
        for live in dict.fromkeys(SEEN)
    }


def live_changes(before: dict) -> dict:
    """The parameters of the live modules this call received, for those the call changed."""
    out = {}
    for live, params in before.items():
        now = dict(ORIGINAL["Module"].named_parameters(LIVE[live]))
        if any(changed(now[k], p.dtype, tuple(p.shape), p) for k, p in params.items()):
            out[live] = {k: v.detach() for k, v in now.items()}
    return out
