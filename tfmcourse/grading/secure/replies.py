"""The worker's replies, checked before they touch the grader's objects.

The learner's code may change its inputs in place, and a call may train a
module the worker keeps (:func:`~tfmcourse.grading.secure.proxy.live_spec`):
the worker sends back the changed tensors, and here the same changes are made
to the check's own objects, so the check sees what a notebook would show. The
answers to module requests and to a shape watch are checked here too. A reply
that does not fit what was asked raises :class:`ProtocolError`, and the
session ends the exercise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tfmcourse.grading.secure.wire import Kind, ProtocolError


def apply_mutations(sent: list[torch.Tensor], idx: Any, new: Any) -> None:
    """The learner's code modified inputs ``sent[i]`` (``i`` in ``idx``) in place: copy ``new`` into them."""
    if not (isinstance(idx, list) and isinstance(new, list) and len(idx) == len(new)):
        raise ProtocolError("mutations")
    for i, t in zip(idx, new):
        if not (type(i) is int and 0 <= i < len(sent) and type(t) is torch.Tensor):
            raise ProtocolError("mutations")
        with torch.no_grad():
            if sent[i].dtype == t.dtype and sent[i].shape == t.shape:
                sent[i].copy_(t)
            else:
                sent[i].data = t


def apply_live(live: dict[int, Any], changes: Any) -> None:
    """The call changed the parameters of modules the worker keeps (numbered as in ``live``): do
    the same to ours, each module's only once all of them fit."""
    if changes is None:
        return
    if not isinstance(changes, dict):
        raise ProtocolError("parameters")
    for n, params in changes.items():
        module = live.get(n)
        ours = dict(module.named_parameters()) if isinstance(module, nn.Module) else None
        if ours is None or not isinstance(params, dict) or set(params) != set(ours):
            raise ProtocolError("parameters")
        for k, t in params.items():
            if not (type(t) is torch.Tensor and t.dtype == ours[k].dtype and t.shape == ours[k].shape):
                raise ProtocolError("parameters")
        with torch.no_grad():
            for k, t in params.items():
                ours[k].copy_(t)


def module_answer(kind: Kind, value: Any) -> Any:
    """The answer to module request ``kind``: parameter names and sizes, a count, or nothing."""
    if kind == Kind.PARAM_SHAPES:
        if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(type(s) is int for s in v) for v in value.values()
        ):
            raise ProtocolError("parameters")
        return {str(k): torch.Size(v) for k, v in value.items()}
    if kind == Kind.COUNT_PARAMETERS and type(value) is not int:
        raise ProtocolError("parameter count")
    return value


def watched(value: Any) -> bool:
    """Whether the call produced a tensor of a watched shape: a ``bool``."""
    if type(value) is not bool:
        raise ProtocolError("watched shapes")
    return value
