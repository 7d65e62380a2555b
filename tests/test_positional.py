"""Tests of tfmcourse.positional (lesson 05)."""

import math

import pytest
import torch
from torch import nn

from tfmcourse import positional as P


def test_table_matches_the_formula_elementwise():
    pe = P.sinusoidal_positional_encoding(20, 10)
    assert pe.shape == (20, 10) and pe.dtype == torch.float32
    for p in (0, 1, 7, 19):
        for i in range(5):
            angle = p / 10000 ** (2 * i / 10)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_position_zero_and_d_model_two():
    assert torch.equal(P.sinusoidal_positional_encoding(1, 6)[0], torch.tensor([0.0, 1, 0, 1, 0, 1]))
    pe = P.sinusoidal_positional_encoding(4, 2)
    p = torch.arange(4.0)
    assert torch.allclose(pe, torch.stack([p.sin(), p.cos()], 1), atol=1e-7)


@pytest.mark.parametrize("d_model", [1, 5, 23])
def test_odd_d_model_raises_a_clear_error(d_model):
    with pytest.raises(ValueError, match=rf"even.*{d_model}"):
        P.sinusoidal_positional_encoding(10, d_model)


def test_bad_sizes_raise():
    with pytest.raises(ValueError):
        P.sinusoidal_positional_encoding(-1, 4)
    with pytest.raises(ValueError):
        P.sinusoidal_positional_encoding(4, 0)


def test_frequencies_decrease_from_one_to_about_one_over_base():
    w = P.frequencies(512)
    assert w[0] == 1 and bool((w[1:] < w[:-1]).all())
    assert w[-1].item() == pytest.approx(10000 ** (-510 / 512))


@pytest.mark.parametrize("k", [1, 2, 5, 13])
def test_shift_is_a_fixed_rotation(k):
    pe = P.sinusoidal_positional_encoding(64, 24).double()
    R = P.shift_matrix(k, 24)
    assert torch.allclose(R @ R.T, torch.eye(24, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(pe[k:], pe[:-k] @ R.T, atol=1e-6)  # every pos at once: R does not depend on pos


def test_dot_product_depends_only_on_distance():
    pe = P.sinusoidal_positional_encoding(60, 32).double()
    G = pe @ pe.T
    for k in (0, 1, 4, 9):
        diag = torch.diagonal(G, offset=k)
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-5)
    assert torch.allclose(torch.diagonal(G), torch.full((60,), 16.0, dtype=torch.float64), atol=1e-5)
    sim = P.position_similarity(pe, 30)
    assert int(sim.argmax()) == 30 and sim[29] == pytest.approx(sim[31].item(), abs=1e-6)


def test_binary_codes_and_sign_changes():
    codes = P.binary_codes(8, 3)
    assert codes.tolist()[5] == [1.0, 0.0, 1.0]
    assert P.sign_changes(P.binary_codes(32, 5), 0.5).tolist() == [31, 15, 7, 3, 1]
    flips = P.sign_changes(P.sinusoidal_positional_encoding(100, 16)[:, 0::2])
    assert bool((flips[1:] <= flips[:-1]).all()) and flips[0] > flips[-1]


def test_embed_with_positions():
    torch.manual_seed(0)
    emb = nn.Embedding(10, 8)
    tokens = torch.tensor([[1, 2, 3], [3, 3, 0]])
    pe = torch.randn(5, 8)
    out = P.embed_with_positions(tokens, emb, pe)
    assert out.shape == (2, 3, 8)
    for b in range(2):
        for t in range(3):
            assert torch.allclose(out[b, t], emb.weight[tokens[b, t]] * math.sqrt(8) + pe[t])
    # the same token at two positions gets two different vectors
    assert not torch.allclose(out[1, 0], out[1, 1])
    with pytest.raises(ValueError, match="fewer"):
        P.embed_with_positions(torch.zeros(1, 6, dtype=torch.long), emb, pe)
    with pytest.raises(ValueError):
        P.embed_with_positions(tokens, emb, torch.zeros(5, 7))
