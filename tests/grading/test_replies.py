"""The worker's replies, checked before they touch the grader's objects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tfmcourse.grading.secure import replies
from tfmcourse.grading.secure.wire import Kind, ProtocolError


def test_inputs_changed_in_place_are_changed_here_too():
    a, b = torch.zeros(2), torch.zeros(3)
    replies.apply_mutations([a, b], [1], [torch.ones(3)])
    assert torch.equal(a, torch.zeros(2)) and torch.equal(b, torch.ones(3))
    replies.apply_mutations([a], [0], [torch.ones(4, dtype=torch.float64)])  # resized in place
    assert a.dtype == torch.float64 and torch.equal(a, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize(
    "idx, new",
    [([2], [torch.ones(2)]), ([0], []), ([True], [torch.ones(2)]), ([0], [[1.0, 1.0]]), (None, None)],
)
def test_a_mutation_that_does_not_fit_what_was_sent_is_refused(idx, new):
    a = torch.zeros(2)
    with pytest.raises(ProtocolError, match="mutations"):
        replies.apply_mutations([a], idx, new)
    assert torch.equal(a, torch.zeros(2))


def test_parameters_a_call_trained_come_back_into_the_checks_module():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    trained = {k: v.detach() + 1 for k, v in model.named_parameters()}
    replies.apply_live({1: model}, {1: trained})
    assert all(torch.equal(p, trained[k]) for k, p in model.named_parameters())
    replies.apply_live({1: model}, None)  # the call changed nothing


@pytest.mark.parametrize(
    "changes",
    [
        {2: {}},  # not a module the grader numbered
        {1: {"weight": torch.zeros(2, 2)}},  # a parameter missing
        {1: {"weight": torch.zeros(2, 2), "bias": torch.zeros(3)}},  # wrong shape
        {1: {"weight": torch.zeros(2, 2), "bias": torch.zeros(2, dtype=torch.int64)}},  # wrong dtype
        [1],
    ],
)
def test_parameters_that_do_not_fit_the_module_are_refused(changes):
    model = nn.Linear(2, 2)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with pytest.raises(ProtocolError, match="parameters"):
        replies.apply_live({1: model}, changes)
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())


def test_answers_to_module_requests_are_what_was_asked():
    shapes = replies.module_answer(Kind.PARAM_SHAPES, {"w": [3, 2], "b": [3]})
    assert shapes == {"w": torch.Size([3, 2]), "b": torch.Size([3])}
    assert replies.module_answer(Kind.COUNT_PARAMETERS, 9) == 9
    assert replies.module_answer(Kind.SET_MODE, None) is None
    with pytest.raises(ProtocolError, match="parameters"):
        replies.module_answer(Kind.PARAM_SHAPES, {"w": [3, "2"]})
    with pytest.raises(ProtocolError, match="parameter count"):
        replies.module_answer(Kind.COUNT_PARAMETERS, 9.0)
    assert replies.watched(True) is True
    with pytest.raises(ProtocolError, match="watched shapes"):
        replies.watched(1)
