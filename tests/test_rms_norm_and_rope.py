"""Tests of RMSNorm (tfmcourse.norms) and RoPE (tfmcourse.positional): parity with torch, the rotation property."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tfmcourse import norms, positional


@pytest.mark.parametrize("shape", [(7,), (4, 9), (2, 5, 24), (2, 3, 4, 6)])
@pytest.mark.parametrize("eps", [1e-6, 1e-5, 0.1])
def test_rms_norm_equals_torch_functional_rms_norm(shape, eps):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g) * 3 + 1
    w = torch.rand(shape[-1], generator=g) + 0.5
    torch.testing.assert_close(norms.rms_norm(x, w, eps), F.rms_norm(x, (shape[-1],), w, eps))


def test_rmsnorm_module_equals_nn_rmsnorm():
    x = torch.randn(3, 5, 16)
    mine, theirs = norms.RMSNorm(16, eps=1e-6), nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        mine.weight.uniform_(0.5, 1.5)
        theirs.weight.copy_(mine.weight)
    torch.testing.assert_close(mine(x), theirs(x))


def test_rms_norm_differs_from_layer_norm_only_by_the_mean():
    x = torch.randn(4, 12)
    centred = x - x.mean(-1, keepdim=True)
    w, b = torch.ones(12), torch.zeros(12)
    torch.testing.assert_close(norms.rms_norm(centred, w, 1e-5), norms.layer_norm(x, w, b, 1e-5))
    assert not torch.allclose(norms.rms_norm(x + 3, w), norms.layer_norm(x + 3, w, b), atol=1e-2)


def test_rms_norm_rejects_a_weight_of_the_wrong_size():
    with pytest.raises(ValueError, match="weight must have shape"):
        norms.rms_norm(torch.randn(2, 5), torch.ones(4))


def _rope_complex(x, positions, base=10000.0):
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    rot = torch.polar(
        torch.ones(len(positions), d // 2, dtype=torch.float64), positions.double()[:, None] * freqs
    )
    return torch.view_as_real(z * rot).flatten(-2).float()


def test_apply_rope_is_complex_multiplication_of_interleaved_pairs():
    x, pos = torch.randn(2, 3, 6, 10), torch.tensor([0, 5, 1, 9, 30, 2])
    torch.testing.assert_close(positional.apply_rope(x, pos), _rope_complex(x, pos), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        positional.apply_rope(x, pos, 50.0), _rope_complex(x, pos, 50.0), rtol=1e-5, atol=1e-5
    )


def test_apply_rope_rotates_like_lesson_05_shift_matrix():
    """Rotating the sinusoid row of position p by RoPE's angles for k gives the row of p + k (swapped pair order)."""
    d, p, k = 16, 3, 11
    pe = positional.sinusoidal_positional_encoding(40, d).double()
    # RoPE rotates (a, b) -> (a cos − b sin, a sin + b cos); lesson 05's pairs are (sin, cos) = (b, a) in that order
    cos_sin = pe[p].reshape(d // 2, 2).flip(-1).reshape(1, 1, 1, d).float()
    moved = positional.apply_rope(cos_sin, torch.tensor([k])).reshape(d // 2, 2).flip(-1).reshape(d)
    torch.testing.assert_close(moved.double(), pe[p + k], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pe[p + k], positional.shift_matrix(k, d) @ pe[p])


@settings(max_examples=30, deadline=None)
@given(p=st.integers(0, 200), s=st.integers(0, 200), shift=st.integers(0, 200), seed=st.integers(0, 10**6))
def test_rope_scores_depend_only_on_the_offset(p, s, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    a = positional.apply_rope(q, torch.tensor([p])) @ positional.apply_rope(k, torch.tensor([s])).mT
    b = (
        positional.apply_rope(q, torch.tensor([p + shift]))
        @ positional.apply_rope(k, torch.tensor([s + shift])).mT
    )
    assert math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-3)


def test_apply_rope_preserves_norms_and_rejects_odd_d():
    x = torch.randn(2, 2, 5, 8)
    y = positional.apply_rope(x, torch.arange(5))
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    with pytest.raises(ValueError, match="must be even"):
        positional.apply_rope(torch.randn(1, 1, 3, 7), torch.arange(3))
    with pytest.raises(ValueError, match="positions must be"):
        positional.apply_rope(x, torch.arange(4))
