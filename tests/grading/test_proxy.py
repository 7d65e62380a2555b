"""What a check holds in secure grading: proxies that speak the checks' protocol, and layers that travel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tfmcourse.checks._core import CheckFailed, call, count_parameters, load_weights, set_mode
from tfmcourse.checks._grader import is_remote
from tfmcourse.grading.secure import proxy, rebuild, wire
from tfmcourse.grading.secure.wire import Kind, ProtocolError


class FakeSession:
    """Records what a proxy asks for, as the sandbox's session would receive it."""

    def __init__(self):
        self.calls, self.ops, self.remote = [], [], {}

    def call(self, hid, name, args, kwargs):
        self.calls.append((hid, name, args, kwargs, torch.is_grad_enabled()))
        return "result"

    def module_op(self, hid, label, kind, arg=None):
        self.ops.append((kind, arg))
        if kind == Kind.PARAM_SHAPES:
            return {"linear1.weight": torch.Size([3, 2])}
        return 7 if kind == Kind.COUNT_PARAMETERS else None


def test_checks_reach_the_learner_object_only_through_the_protocol():
    session = FakeSession()
    p = proxy.remote(session, 4, "FeedForward", module=True)
    assert is_remote(p) and isinstance(p, nn.Module) and type(p).__name__ == "FeedForward"
    assert call("FeedForward", p, torch.ones(2), dim=1) == "result"
    assert call("FeedForward", p, torch.ones(2), _no_grad=True) == "result"
    (_, name, _args, kwargs, grad), (*_, no_grad_kwargs, grad2) = session.calls
    assert name == "FeedForward" and kwargs == {"dim": 1} and grad is True
    assert no_grad_kwargs == {} and grad2 is False  # grad mode travels with the call, not as a keyword
    assert count_parameters(p) == 7
    set_mode(p, False)
    load_weights(p, {"linear1.weight": torch.zeros(3, 2)})
    kinds = [k for k, _ in session.ops]
    assert kinds == [Kind.COUNT_PARAMETERS, Kind.SET_MODE, Kind.PARAM_SHAPES, Kind.LOAD_WEIGHTS]
    assert session.ops[1][1] is False and torch.equal(session.ops[3][1]["linear1.weight"], torch.zeros(3, 2))


def test_a_missing_or_misshapen_parameter_is_named_without_loading_anything():
    session = FakeSession()
    p = proxy.remote(session, 1, "FeedForward", module=True)
    with pytest.raises(CheckFailed, match=r"no parameter 'linear2\.weight'.*submodule 'linear2'"):
        load_weights(p, {"linear2.weight": torch.zeros(2, 3)})
    with pytest.raises(CheckFailed, match=r"'linear1.weight' has shape \(3, 2\), expected \(2, 3\)"):
        load_weights(p, {"linear1.weight": torch.zeros(2, 3)})
    assert Kind.LOAD_WEIGHTS not in [k for k, _ in session.ops]


@pytest.fixture(scope="module")
def worker_classes():
    rebuild.capture()
    return rebuild


LAYERS = [
    lambda: nn.Linear(4, 3),
    lambda: nn.Linear(4, 3, bias=False),
    lambda: nn.LayerNorm(4, eps=1e-3),
    lambda: nn.Embedding(5, 4, padding_idx=0),
    lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.0), nn.Linear(4, 4)),
    lambda: nn.GRUCell(4, 3),
    lambda: nn.RNN(4, 3, batch_first=True),
]


@pytest.mark.parametrize("make", LAYERS, ids=lambda f: repr(f()).split("(")[0] + str(LAYERS.index(f)))
def test_standard_layers_travel_as_arguments_and_state(make, worker_classes):
    torch.manual_seed(0)
    layer = make().eval()
    bufs: list[bytes] = []
    spec = proxy.module_spec(layer, bufs)
    assert spec is not None
    rebuilt = worker_classes.build_module(spec, bufs)
    assert type(rebuilt) is type(layer) and rebuilt.training is False
    assert repr(rebuilt) == repr(layer)
    for (k, a), (k2, b) in zip(layer.state_dict().items(), rebuilt.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_a_custom_layer_stays_behind_as_a_remote_object():
    class Custom(nn.Module):
        def forward(self, x):
            return x

    session = FakeSession()
    assert proxy.module_spec(Custom(), []) is None
    d = proxy.encode_hook(session, Custom(), [])
    assert d == {"$": wire.Tag.REMOTE, "id": 1} and isinstance(session.remote[1], Custom)


def test_values_from_the_worker_become_plain_data_or_opaque():
    session = FakeSession()
    got = proxy.decode_hook(session, {"$": "opaque", "type": "Agreeable (a torch.Tensor subclass)"}, [])
    assert isinstance(got, proxy.Opaque) and "Agreeable" in type(got).__name__
    for bad in ({"$": "remote", "id": 99}, {"$": "dtype", "v": "object"}, {"$": "pickle"}):
        with pytest.raises(ProtocolError, match="unexpected value tag"):
            proxy.decode_hook(session, bad, [])
