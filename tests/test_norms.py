"""Tests of tfmcourse.norms: parity with torch's norms and the properties lesson 03 demonstrates."""

import pytest
import torch
from torch import nn

from tfmcourse import norms
from tfmcourse.experiments import lesson03


def _x(*shape, seed=0, mean=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 2.0 + mean


def _affine(C, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g)


@pytest.mark.parametrize("shape", [(7,), (4, 9), (2, 5, 24), (2, 3, 4, 6)])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_layer_norm_equals_nn_layernorm(shape, eps):
    x = _x(*shape)
    gamma, beta = _affine(shape[-1])
    ref = nn.LayerNorm(shape[-1], eps=eps)
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(beta)
    torch.testing.assert_close(norms.layer_norm(x, gamma, beta, eps), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 7), (2, 3, 4, 6)])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_batch_norm_equals_nn_batchnorm1d_training_mode(shape, eps):
    x = _x(*shape)
    C = shape[-1]
    gamma, beta = _affine(C)
    bn = nn.BatchNorm1d(C, eps=eps).train()
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    flat = x.reshape(-1, C)  # (N, C): nn.BatchNorm1d's statistics over N
    torch.testing.assert_close(
        norms.batch_norm(x, gamma, beta, eps), bn(flat).reshape(shape), rtol=1e-5, atol=1e-5
    )


def test_batch_norm_matches_batchnorm1d_on_channels_first_sequence():
    x = _x(3, 5, 7)
    gamma, beta = _affine(7)
    bn = norms.SequenceBatchNorm(7).train()
    with torch.no_grad():
        bn.bn.weight.copy_(gamma)
        bn.bn.bias.copy_(beta)
    torch.testing.assert_close(norms.batch_norm(x, gamma, beta), bn(x), rtol=1e-5, atol=1e-5)


def test_layer_norm_statistics_are_per_token():
    x = _x(4, 6, 10)
    gamma, beta = torch.ones(10), torch.zeros(10)
    y = norms.layer_norm(x, gamma, beta, eps=0.0)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(4, 6), atol=1e-4, rtol=0)
    # each token alone gives the same result (batch size 1, any length)
    torch.testing.assert_close(norms.layer_norm(x[2:3, 4:5], gamma, beta, 0.0), y[2:3, 4:5])


def test_layer_norm_is_scale_and_shift_invariant_per_token():
    x = _x(3, 8)
    gamma, beta = _affine(8)
    y = norms.layer_norm(x, gamma, beta, eps=0.0)
    scale = torch.tensor([[0.1], [3.0], [50.0]])
    torch.testing.assert_close(
        norms.layer_norm(x * scale + 7.0, gamma, beta, eps=0.0), y, rtol=1e-4, atol=1e-4
    )


def test_batch_norm_channel_statistics():
    x = _x(5, 4, 3)
    y = norms.batch_norm(x, torch.ones(3), torch.zeros(3), eps=0.0)
    torch.testing.assert_close(y.mean((0, 1)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var((0, 1), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_batch_norm_batch_of_one_collapses_to_beta():
    gamma, beta = _affine(5)
    y = norms.batch_norm(_x(1, 5), gamma, beta)
    torch.testing.assert_close(y, beta.expand(1, 5))


def test_inputs_are_not_modified():
    x = _x(3, 4, 5)
    x0 = x.clone()
    norms.batch_norm(x, *_affine(5))
    norms.layer_norm(x, *_affine(5))
    assert torch.equal(x, x0)


@pytest.mark.parametrize("fn", [norms.batch_norm, norms.layer_norm])
def test_clear_errors_on_bad_shapes(fn):
    with pytest.raises(ValueError, match=r"gamma must have shape \(5,\)"):
        fn(_x(3, 5), torch.ones(4), torch.zeros(5))
    with pytest.raises(ValueError, match="beta must have shape"):
        fn(_x(3, 5), torch.ones(5), torch.zeros(5, 1))
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.ones(3, 5, dtype=torch.long), torch.ones(5), torch.zeros(5))


def test_batch_norm_needs_a_batch_axis():
    with pytest.raises(ValueError, match="at least 2 dimension"):
        norms.batch_norm(_x(5), torch.ones(5), torch.zeros(5))


def test_masked_batch_norm_ignores_pads_and_equals_bn_of_real_tokens():
    x, pad = lesson03.padded_batch([5, 2, 3], T=8, C=4, seed=3)
    gamma, beta = _affine(4)
    y = norms.masked_batch_norm(x, gamma, beta, pad)
    real = x[~pad]  # (N_real, C)
    torch.testing.assert_close(y[~pad], norms.batch_norm(real, gamma, beta))
    x_longer, pad_longer = lesson03.padded_batch([5, 2, 3], T=12, C=4, seed=3)
    torch.testing.assert_close(
        norms.masked_batch_norm(x_longer, gamma, beta, pad_longer)[~pad_longer], y[~pad]
    )


def test_padding_changes_plain_batch_norm_but_not_layer_norm():
    gamma, beta = _affine(4)
    a, pa = lesson03.padded_batch([5, 2, 3], T=6, C=4)
    b, pb = lesson03.padded_batch([5, 2, 3], T=20, C=4)
    assert torch.equal(a[~pa], b[~pb])
    assert (norms.batch_norm(a, gamma, beta)[~pa] - norms.batch_norm(b, gamma, beta)[~pb]).abs().max() > 0.1
    torch.testing.assert_close(norms.layer_norm(a, gamma, beta)[~pa], norms.layer_norm(b, gamma, beta)[~pb])
