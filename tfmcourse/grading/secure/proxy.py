"""What a check holds in secure grading: stand-ins for the learner's objects, and values that cross.

:class:`RemoteObject` (and :class:`RemoteModule`, for an ``nn.Module``) stand
for a learner's function, class or module living in the worker; they implement
the checks' grader protocol (:class:`tfmcourse.checks._grader.Remote`) by asking
their :class:`~tfmcourse.grading.secure.session.Session`. What comes back is
plain data: ``torch.Tensor``, numbers, containers, or an :class:`Opaque` that
only carries a type name. A standard layer a check passes in
(:data:`STANDARD_LAYERS`) travels as its type, constructor arguments and state.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from tfmcourse.checks._grader import Remote
from tfmcourse.grading.secure import wire

#: Layers rebuilt in the worker from these constructor arguments (``bias``: whether it has one).
STANDARD_LAYERS: dict[type, tuple[str, ...]] = {
    nn.Linear: ("in_features", "out_features", "bias"),
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine", "bias"),
    nn.Embedding: (
        "num_embeddings",
        "embedding_dim",
        "padding_idx",
        "max_norm",
        "norm_type",
        "scale_grad_by_freq",
        "sparse",
    ),
    nn.ReLU: (),
    nn.GELU: ("approximate",),
    nn.Tanh: (),
    nn.Sigmoid: (),
    nn.Softmax: ("dim",),
    nn.Dropout: ("p",),
    nn.Identity: (),
    nn.RNNCell: ("input_size", "hidden_size", "bias", "nonlinearity"),
    nn.GRUCell: ("input_size", "hidden_size", "bias"),
    nn.RNN: (
        "input_size",
        "hidden_size",
        "num_layers",
        "nonlinearity",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
    ),
    nn.GRU: ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"),
}


#: Optimizers rebuilt in the worker from these settings (besides the rate), over a rebuilt module.
STANDARD_OPTIMIZERS: dict[type, tuple[str, ...]] = {
    torch.optim.SGD: ("momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    torch.optim.Adam: ("betas", "eps", "weight_decay", "amsgrad", "maximize"),
    torch.optim.AdamW: ("betas", "eps", "weight_decay", "amsgrad", "maximize"),
}
#: Learning-rate schedulers rebuilt in the worker from these arguments, over a rebuilt optimizer.
STANDARD_SCHEDULERS: dict[type, tuple[str, ...]] = {
    torch.optim.lr_scheduler.LinearLR: ("start_factor", "end_factor", "total_iters"),
}


def _argument(m: nn.Module, attr: str) -> Any:
    value = getattr(m, attr, None)
    if attr == "bias" and (value is None or isinstance(value, torch.Tensor)):
        return value is not None  # the constructor flag, not the tensor
    return list(value) if isinstance(value, tuple) else value


def module_spec(m: nn.Module, bufs: list[bytes]) -> dict | None:
    """A standard layer as type name + constructor arguments + state tensors, or None."""
    if type(m) is nn.Sequential:
        children = [module_spec(c, bufs) for c in m]
        if any(c is None for c in children):
            return None
        return {"$": wire.Tag.MODULE, "cls": "Sequential", "children": children, "training": m.training}
    if type(m) not in STANDARD_LAYERS or not all(type(c) in STANDARD_LAYERS for c in m.children()):
        return None
    state = {k: wire.tensor_to_wire(torch, v, bufs) for k, v in m.state_dict().items()}
    init = {a: _argument(m, a) for a in STANDARD_LAYERS[type(m)]}
    return {
        "$": wire.Tag.MODULE,
        "cls": type(m).__name__,
        "init": init,
        "state": state,
        "training": m.training,
    }


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def live_spec(session, v: Any, bufs: list[bytes]) -> dict | None:
    """A module, optimizer or scheduler the worker keeps across this exercise's calls, or None.

    A standard module is numbered the first time it is sent and carries its whole state every
    time (the worker loads it into the same object); an optimizer is rebuilt once, fresh, over
    such a module's parameters (all of them, in order, one group); a scheduler once, fresh,
    over such an optimizer. After each call the worker sends back the parameters the call
    changed (:meth:`Session.call` copies them into the module here)."""
    if isinstance(v, nn.Module):
        spec = module_spec(v, bufs)
        if spec is None:
            return None
        live = session.live_number(v)
        spec["live"] = live
        spec["state"] = {k: wire.tensor_to_wire(torch, t, bufs) for k, t in v.state_dict().items()}
        return spec
    if type(v) in STANDARD_OPTIMIZERS:
        known = session.live_number(v, create=False)
        if known is not None:
            return {"$": wire.Tag.OPTIMIZER, "live": known}
        (group, *more) = v.param_groups
        module = next(
            (
                m
                for m in session.live.values()
                if isinstance(m, nn.Module)
                and [id(p) for p in m.parameters()] == [id(p) for p in group["params"]]
            ),
            None,
        )
        if more or module is None or v.state or not isinstance(group["lr"], float):
            return None
        hyper = {a: _plain(group[a]) for a in STANDARD_OPTIMIZERS[type(v)] if a in group}
        initial = group.get("initial_lr")
        return {
            "$": wire.Tag.OPTIMIZER,
            "live": session.live_number(v),
            "cls": type(v).__name__,
            "module": session.live_number(module, create=False),
            "hyper": {"lr": group["lr"], **hyper},
            "initial_lr": float(initial) if initial is not None else None,
        }
    if type(v) in STANDARD_SCHEDULERS:
        known = session.live_number(v, create=False)
        if known is not None:
            return {"$": wire.Tag.SCHEDULER, "live": known}
        opt = session.live_number(v.optimizer, create=False)
        if opt is None or v.last_epoch != 0:
            return None
        args = {a: _plain(getattr(v, a)) for a in STANDARD_SCHEDULERS[type(v)]}
        return {
            "$": wire.Tag.SCHEDULER,
            "live": session.live_number(v),
            "cls": type(v).__name__,
            "optimizer": opt,
            "args": args,
        }
    return None


class Opaque:
    """Something the learner's code returned that is not plain data (shown by its type name)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from the learner's code>"


_OPAQUE_TYPES: dict[str, type] = {}


def opaque(type_name: Any) -> Opaque:
    """An :class:`Opaque` whose class is named like the learner's, so messages say ``got Foo``."""
    name = str(type_name)[:80] or "object"
    if name not in _OPAQUE_TYPES and len(_OPAQUE_TYPES) < 1000:
        _OPAQUE_TYPES[name] = type(name, (Opaque,), {})
    return _OPAQUE_TYPES.get(name, Opaque)()


class RemoteObject(Remote):
    """Stands for a learner's function or class living in the worker process."""

    def __init__(self, session, hid: int, type_name: str):
        self._session, self._id, self.grader_type_name = session, hid, type_name

    def __repr__(self) -> str:
        return f"<learner's {self.grader_type_name} (in the grading sandbox)>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.grader_call(self.grader_type_name, args, kwargs)

    def grader_call(self, name: str, args: tuple, kwargs: dict) -> Any:
        return self._session.call(self._id, name, args, kwargs)

    def grader_call_watching(
        self, name: str, args: tuple, kwargs: dict, shapes: list[tuple[int, int]]
    ) -> tuple[Any, bool]:
        return self._session.call(self._id, name, args, kwargs, watch=shapes)

    def grader_parameter_shapes(self) -> dict[str, torch.Size]:
        return self._session.module_op(self._id, self.grader_type_name, wire.Kind.PARAM_SHAPES)

    def grader_load(self, weights: dict[str, torch.Tensor]) -> None:
        weights = {str(k): v.detach() for k, v in weights.items()}
        self._session.module_op(self._id, self.grader_type_name, wire.Kind.LOAD_WEIGHTS, weights)

    def grader_count_parameters(self) -> int:
        return self._session.module_op(self._id, self.grader_type_name, wire.Kind.COUNT_PARAMETERS)

    def grader_set_mode(self, training: bool) -> None:
        self._session.module_op(self._id, self.grader_type_name, wire.Kind.SET_MODE, bool(training))


class RemoteModule(RemoteObject, nn.Module):
    """A learner's ``nn.Module`` in the worker: ``isinstance(x, nn.Module)`` holds, nothing else is local."""

    def __init__(self, session, hid: int, type_name: str):
        nn.Module.__init__(self)
        RemoteObject.__init__(self, session, hid, type_name)

    __call__ = RemoteObject.__call__
    __repr__ = RemoteObject.__repr__


_REMOTE_TYPES: dict[tuple[str, bool], type] = {}


def remote(session, hid: int, type_name: Any, module: bool) -> RemoteObject:
    """A proxy whose class is named like the learner's class, so messages say ``got FeedForward``."""
    type_name = str(type_name)[:80]
    name = re.sub(r"\W", "_", type_name) or "object"
    key = (name, module)
    if key not in _REMOTE_TYPES and len(_REMOTE_TYPES) < 1000:
        _REMOTE_TYPES[key] = type(name, (RemoteModule if module else RemoteObject,), {})
    cls = _REMOTE_TYPES.get(key, RemoteModule if module else RemoteObject)
    return cls(session, hid, type_name)


def encode_hook(session, v: Any, bufs: list[bytes]) -> dict:
    """How a value a check passes travels to the worker (plain data, or a handle)."""
    if type(v) in (torch.Tensor, nn.Parameter):
        return wire.tensor_to_wire(torch, v, bufs)
    if isinstance(v, RemoteObject):
        if v._session is not session:
            raise ValueError("an object from another exercise's sandbox was passed")
        return {"$": wire.Tag.HANDLE, "id": v._id}
    if type(v) is torch.dtype:
        return {"$": wire.Tag.DTYPE, "v": str(v).replace("torch.", "")}
    if type(v) is torch.Size:
        return {"$": wire.Tag.TUPLE, "items": [int(s) for s in v]}
    if (spec := live_spec(session, v, bufs)) is not None:
        return spec
    if isinstance(v, torch.Tensor):
        return wire.tensor_to_wire(torch, v.as_subclass(torch.Tensor), bufs)
    # anything else the check passes (a scripted model, a function) stays in the trusted
    # process; the learner's code calls it back through the session
    rid = len(session.remote) + 1
    session.remote[rid] = v
    return {"$": wire.Tag.REMOTE, "id": rid}


def decode_hook(session, d: dict, bufs: list[bytes]) -> Any:
    """What a tagged value from the worker becomes here: never more than plain data or a proxy."""
    tag = d.get("$")
    if tag == wire.Tag.TENSOR:
        return wire.tensor_from_wire(torch, d, bufs)
    if tag == wire.Tag.OPAQUE:
        return opaque(d.get("type"))
    if tag == wire.Tag.HANDLE and type(d.get("id")) is int:
        return remote(session, d["id"], d.get("type", "object"), bool(d.get("module")))
    if tag == wire.Tag.REMOTE and d.get("id") in session.remote:
        return session.remote[d["id"]]
    if tag == wire.Tag.DTYPE and d.get("v") in wire.DTYPES:
        return getattr(torch, d["v"])
    raise wire.ProtocolError(f"unexpected value tag {str(tag)[:40]!r}")
