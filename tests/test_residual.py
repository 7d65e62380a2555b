"""Tests of tfmcourse.residual: residual_sublayer against torch, and the lesson 04 stacks."""

import pytest
import torch
from torch import nn

from tfmcourse import residual as R


def _modules(D=24, d_ff=37, seed=0):
    torch.manual_seed(seed)
    sub = nn.Sequential(nn.Linear(D, d_ff), nn.ReLU(), nn.Linear(d_ff, D))
    norm = nn.LayerNorm(D)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.normal_()
    return sub, norm


def test_post_ln_is_default_and_matches_definition():
    sub, norm = _modules()
    x = torch.randn(2, 5, 24) + 3.0
    torch.testing.assert_close(R.residual_sublayer(x, sub, norm), norm(x + sub(x)))
    torch.testing.assert_close(R.residual_sublayer(x, sub, norm, norm_first=True), x + sub(norm(x)))


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_torch_transformer_encoder_layer_ff_block(norm_first):
    """residual_sublayer with the feed-forward block equals the ff half of nn.TransformerEncoderLayer."""
    torch.manual_seed(0)
    D, d_ff = 24, 37
    layer = nn.TransformerEncoderLayer(
        D, 3, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    ff = nn.Sequential(layer.linear1, nn.ReLU(), layer.linear2)
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        want = x + layer._ff_block(layer.norm2(x)) if norm_first else layer.norm2(x + layer._ff_block(x))
        got = R.residual_sublayer(x, ff, layer.norm2, norm_first=norm_first)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("norm_first", [False, True])
def test_full_encoder_layer_built_from_two_residual_sublayers_matches_torch(norm_first):
    torch.manual_seed(1)
    D, H, d_ff = 24, 3, 37
    layer = nn.TransformerEncoderLayer(
        D, H, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    sa = lambda z: layer.self_attn(z, z, z, need_weights=False)[0]  # noqa: E731
    ff = nn.Sequential(layer.linear1, nn.ReLU(), layer.linear2)
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        h = R.residual_sublayer(x, sa, layer.norm1, norm_first=norm_first)
        got = R.residual_sublayer(h, ff, layer.norm2, norm_first=norm_first)
        want = layer(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_zero_sublayer_pre_ln_is_identity():
    _, norm = _modules()
    x = torch.randn(3, 4, 24) * 5
    torch.testing.assert_close(
        R.residual_sublayer(x, lambda z: torch.zeros_like(z), norm, norm_first=True), x
    )


def test_shape_change_is_a_clear_error():
    with pytest.raises(ValueError, match="changed the shape"):
        R.residual_sublayer(torch.randn(2, 3, 8), nn.Linear(8, 4), nn.Identity(), norm_first=True)


def test_residual_stack_keeps_gradients_plain_stack_loses_them():
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = R.stack_grad_norms(R.DeepStack(20, 32, residual=False), x)
    torch.manual_seed(0)
    res = R.stack_grad_norms(R.DeepStack(20, 32, residual=True), x)
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
    sv = R.jacobian_singular_values(lambda z: z + f(z), x)
    assert sv.shape == (8,) and bool((sv[:-1] >= sv[1:]).all())


def test_post_ln_last_layer_gradient_does_not_shrink_with_depth_pre_ln_does():
    x = torch.randn(4, 6, 32, generator=torch.Generator().manual_seed(1))

    def last(L, nf):
        torch.manual_seed(0)
        return R.stack_grad_norms(R.NormedResidualStack(L, 32, 64, 4, norm_first=nf), x)[-1].item()

    assert 0.6 < last(16, False) / last(2, False) < 1.6
    assert last(16, True) / last(2, True) < 0.7


def test_pre_ln_stack_has_final_norm_post_ln_does_not():
    assert isinstance(R.NormedResidualStack(2, 16, 32, 2, norm_first=True).final_norm, nn.LayerNorm)
    assert isinstance(R.NormedResidualStack(2, 16, 32, 2, norm_first=False).final_norm, nn.Identity)


def test_linear_probe_reads_linearly_separable_labels_and_is_at_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 10, generator=g) * 3
    y = torch.randint(0, 5, (400,), generator=g)
    x = centres[y] + 0.1 * torch.randn(400, 10, generator=g)
    assert R.linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:], 5) == 1.0
    noise = torch.randn(400, 10, generator=g)
    assert R.linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:], 5) < 0.4


def test_position_survives_attention_stack_only_with_residual():
    torch.manual_seed(0)
    T, D = 12, 32
    emb, pos = nn.Embedding(40, D), torch.randn(T, D)
    with_res = R.AttentionStack(6, D, 4, residual=True)
    without = R.AttentionStack(6, D, 4, residual=False)
    assert R.position_probe(with_res, emb, pos, n_train=100, n_test=50) > 0.9
    assert R.position_probe(without, emb, pos, n_train=100, n_test=50) < 0.3


def test_deep_stack_validates_arguments():
    with pytest.raises(ValueError, match="depth"):
        R.DeepStack(0, residual=True)
    with pytest.raises(ValueError, match="activation"):
        R.DeepStack(2, residual=True, activation="sigmoid")
