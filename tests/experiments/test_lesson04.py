"""Lesson 04's deep stacks and probes: residuals keep gradients and positions, post-LN vs pre-LN."""

import pytest
import torch
from torch import nn

from tfmcourse.experiments import lesson04


def test_residual_stack_keeps_gradients_plain_stack_loses_them():
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = lesson04.stack_grad_norms(lesson04.DeepStack(20, 32, residual=False), x)
    torch.manual_seed(0)
    res = lesson04.stack_grad_norms(lesson04.DeepStack(20, 32, residual=True), x)
    assert plain.shape == res.shape == (20,)
    assert plain[0] / plain[-1] < 1e-3  # vanishing towards the input
    assert 0.2 < res[0] / res[-1] < 5.0  # roughly flat
    assert res[0] > 1e3 * plain[0]


def test_jacobian_of_residual_block_is_identity_plus_branch():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
    x = torch.randn(8)
    J_f = torch.autograd.functional.jacobian(f, x)
    J_res = torch.autograd.functional.jacobian(lambda z: z + f(z), x)
    torch.testing.assert_close(J_res, torch.eye(8) + J_f)
    sv = lesson04.jacobian_singular_values(lambda z: z + f(z), x)
    assert sv.shape == (8,) and bool((sv[:-1] >= sv[1:]).all())


def test_post_ln_last_layer_gradient_does_not_shrink_with_depth_pre_ln_does():
    x = torch.randn(4, 6, 32, generator=torch.Generator().manual_seed(1))

    def last(L, nf):
        torch.manual_seed(0)
        return lesson04.stack_grad_norms(lesson04.NormedResidualStack(L, 32, 64, 4, norm_first=nf), x)[
            -1
        ].item()

    assert 0.6 < last(16, False) / last(2, False) < 1.6
    assert last(16, True) / last(2, True) < 0.7


def test_pre_ln_stack_has_final_norm_post_ln_does_not():
    assert isinstance(lesson04.NormedResidualStack(2, 16, 32, 2, norm_first=True).final_norm, nn.LayerNorm)
    assert isinstance(lesson04.NormedResidualStack(2, 16, 32, 2, norm_first=False).final_norm, nn.Identity)


def test_linear_probe_reads_linearly_separable_labels_and_is_at_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 10, generator=g) * 3
    y = torch.randint(0, 5, (400,), generator=g)
    x = centres[y] + 0.1 * torch.randn(400, 10, generator=g)
    assert lesson04.linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:], 5) == 1.0
    noise = torch.randn(400, 10, generator=g)
    assert lesson04.linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:], 5) < 0.4


def test_position_survives_attention_stack_only_with_residual():
    torch.manual_seed(0)
    T, D = 12, 32
    emb, pos = nn.Embedding(40, D), torch.randn(T, D)
    with_res = lesson04.AttentionStack(6, D, 4, residual=True)
    without = lesson04.AttentionStack(6, D, 4, residual=False)
    assert lesson04.position_probe(with_res, emb, pos, n_train=100, n_test=50) > 0.9
    assert lesson04.position_probe(without, emb, pos, n_train=100, n_test=50) < 0.3


def test_deep_stack_validates_arguments():
    with pytest.raises(ValueError, match="depth"):
        lesson04.DeepStack(0, residual=True)
    with pytest.raises(ValueError, match="activation"):
        lesson04.DeepStack(2, residual=True, activation="sigmoid")
