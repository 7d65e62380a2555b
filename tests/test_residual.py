"""Tests of tfmcourse.residual: residual_sublayer against torch's encoder layer."""

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
