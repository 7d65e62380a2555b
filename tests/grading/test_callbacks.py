"""What learner code may do with a trusted object a check passes in: use it, never reconfigure it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tfmcourse.grading.secure import callbacks


def test_plain_attributes_are_read_and_allowed_methods_announced():
    model = nn.Linear(3, 2)
    assert callbacks.look_up(model, "in_features") == ("value", 3)
    assert callbacks.look_up(model, "forward") == ("method", None)
    assert callbacks.look_up(model, "named_parameters") == ("method", None)


@pytest.mark.parametrize(
    "obj, name, match",
    [
        (nn.Linear(3, 2), "load_state_dict", r"Linear\.load_state_dict\(\) may not be called here"),
        (nn.Linear(3, 2), "_parameters", "no attribute '_parameters'"),
        (nn.Linear(3, 2), 7, "no attribute 7"),
        (None, "forward", "no attribute 'forward'"),
    ],
)
def test_anything_else_is_refused_on_lookup(obj, name, match):
    with pytest.raises(AttributeError, match=match):
        callbacks.look_up(obj, name)


def test_only_the_listed_methods_may_be_called():
    model = nn.Linear(3, 2)
    for method in callbacks.CALLBACK_METHODS:
        callbacks.check_call(model, method)
    for method in ("train", "register_forward_hook"):
        with pytest.raises(AttributeError, match=rf"{method}\(\) may not be called here"):
            callbacks.check_call(model, method)
    for method in ("__setattr__", "_apply"):
        with pytest.raises(AttributeError, match=f"no attribute '{method}'"):
            callbacks.check_call(model, method)


def test_calls_run_in_the_grader_and_parameters_come_back_as_copies():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.equal(callbacks.invoke(model, "__call__", (x,), {}), model(x))
    assert torch.equal(callbacks.invoke(model, "forward", (), {"input": x}), model(x))
    params = callbacks.invoke(model, "parameters", (), {})
    params[0].add_(1.0)
    named = dict(callbacks.invoke(model, "named_parameters", (), {}))
    assert not torch.equal(params[0], model.weight) and torch.equal(named["weight"], model.weight)
    assert not named["weight"].requires_grad
