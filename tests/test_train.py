"""The shared training helpers: the one-thread context, the parameter count."""

import torch
from torch import nn

from tfmcourse.train import count_parameters, one_thread


def test_one_thread_restores_the_setting():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_count_parameters_skips_frozen_ones():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(model) == (3 * 4 + 4) + (4 * 2 + 2)
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 4 + (4 * 2 + 2)
