"""The standard torch objects a check passes in, rebuilt in the worker from their settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tfmcourse.grading.secure import channel, proxy, rebuild, replies, wire
from tfmcourse.grading.secure.session import Session
from tfmcourse.grading.secure.wire import ProtocolError


class Grader:
    """The grader's side of the numbering, as a session keeps it."""

    live_number = Session.live_number

    def __init__(self):
        self.live, self.remote = {}, {}


@pytest.fixture
def worker_state():
    """The worker's module state, fresh for each test (one exercise)."""
    rebuild.capture()
    for state in (rebuild.LIVE, rebuild.SEEN, channel.HANDLES):
        state.clear()
    yield
    for state in (rebuild.LIVE, rebuild.SEEN, channel.HANDLES):
        state.clear()


def send_to_worker(grader: Grader, value):
    """``value`` as the check's call sends it and the worker decodes it."""
    bufs: list[bytes] = []
    encoded = wire.encode(value, bufs, lambda v: proxy.encode_hook(grader, v, bufs))
    return channel.decode(encoded, bufs)


def training_objects():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=4)
    return model, opt, sched


def step(model, opt, sched, x):
    opt.zero_grad()
    model(x).pow(2).sum().backward()
    opt.step()
    sched.step()


def test_a_model_its_optimizer_and_scheduler_are_rebuilt_as_the_grader_built_them(worker_state):
    grader = Grader()
    model, opt, sched = training_objects()
    w_model, w_opt, w_sched = send_to_worker(grader, (model, opt, sched))
    assert type(w_model) is nn.Sequential and type(w_opt) is torch.optim.SGD
    assert type(w_sched) is torch.optim.lr_scheduler.LinearLR and w_sched.optimizer is w_opt
    assert [id(p) for p in w_model.parameters()] == [id(p) for p in w_opt.param_groups[0]["params"]]
    assert w_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.05)
    x = torch.randn(5, 3)
    for _ in range(3):  # momentum and warm-up carry over: both sides stay equal step by step
        step(model, opt, sched, x)
        step(w_model, w_opt, w_sched, x)
    for a, b in zip(model.parameters(), w_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert w_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_live_objects_are_kept_across_calls_and_their_changes_go_back(worker_state):
    grader = Grader()
    model, opt, sched = training_objects()
    first = send_to_worker(grader, (model, opt, sched))
    rebuild.SEEN.clear()  # a new call
    second = send_to_worker(grader, (model, opt, sched))
    assert all(a is b for a, b in zip(first, second))
    before = rebuild.live_parameters()
    assert rebuild.live_changes(before) == {}  # nothing changed yet: nothing goes back
    step(*second, torch.randn(5, 3))
    changes = rebuild.live_changes(before)
    assert list(changes) == [grader.live_number(model, create=False)]
    replies.apply_live(grader.live, changes)
    for a, b in zip(model.parameters(), second[0].parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "spec",
    [
        {"$": "module", "cls": "Module"},
        {"$": "module", "cls": "SGD"},
        {"$": "module", "cls": "MultiheadAttention"},
        {"$": "module", "cls": "Sequential", "children": [{"$": "module", "cls": "Transformer"}]},
    ],
)
def test_only_whitelisted_layers_are_built(spec, worker_state):
    with pytest.raises(ProtocolError, match="not a whitelisted module type"):
        rebuild.build_module(spec, [])


def test_an_optimizer_or_scheduler_needs_a_rebuilt_object_to_work_on(worker_state):
    with pytest.raises(ProtocolError, match="not a whitelisted optimizer"):
        rebuild.build_optimizer({"cls": "SGD", "live": 2, "module": 1, "hyper": {"lr": 0.1}})
    rebuild.LIVE[1] = nn.Linear(2, 2)
    with pytest.raises(ProtocolError, match="not a whitelisted optimizer"):
        rebuild.build_optimizer({"cls": "LBFGS", "live": 2, "module": 1, "hyper": {"lr": 0.1}})
    with pytest.raises(ProtocolError, match="not a whitelisted scheduler"):
        rebuild.build_scheduler({"cls": "LinearLR", "live": 3, "optimizer": 2})


def test_a_tensor_counts_as_changed_unless_equal_with_its_nans_in_place():
    t = torch.tensor([1.0, float("nan"), 3.0])
    assert not rebuild.changed(t, t.dtype, (3,), t.clone())
    assert rebuild.changed(t, t.dtype, (3,), torch.tensor([1.0, float("nan"), 4.0]))
    assert rebuild.changed(t, t.dtype, (3,), torch.tensor([1.0, 2.0, 3.0]))
    assert rebuild.changed(t, torch.float64, (3,), t.clone())
    assert rebuild.changed(t, t.dtype, (1, 3), t.clone())
    n = torch.tensor([1, 2])
    assert not rebuild.changed(n, n.dtype, (2,), n.clone()) and rebuild.changed(n, n.dtype, (2,), n + 1)
