"""Lesson 03's probes: batch norm couples samples and positions, layer norm does not."""

import pytest
import torch

from tfmcourse import norms
from tfmcourse.experiments import lesson03


def _x(*shape, seed=0, mean=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 2.0 + mean


def test_batch_norm_depends_on_other_samples_layer_norm_does_not():
    ln = lambda x: norms.layer_norm(x, torch.ones(16), torch.zeros(16))  # noqa: E731
    bn = lambda x: norms.batch_norm(x, torch.ones(16), torch.zeros(16))  # noqa: E731
    assert lesson03.other_samples_effect(ln, 8) == 0.0
    small, large = lesson03.other_samples_effect(bn, 4), lesson03.other_samples_effect(bn, 64)
    assert small > large > 0.0


def test_causal_decoder_probe_batch_norm_leaks_the_future_layer_norm_does_not():
    torch.manual_seed(0)
    x = _x(4, 6, 16)
    ln_model = lesson03.TinyCausalDecoder(16, 2, 32, n_layers=1, norm="layer")
    bn_model = lesson03.TinyCausalDecoder(16, 2, 32, n_layers=1, norm="batch").train()
    assert lesson03.future_leak(lesson03.dependence_matrix(ln_model, x)) == 0.0
    assert lesson03.future_leak(lesson03.dependence_matrix(bn_model, x)) > 1e-2
    # in eval mode, BN uses running statistics: per-token again, so causal
    assert lesson03.future_leak(lesson03.dependence_matrix(bn_model.eval(), x)) == 0.0


def test_make_norm_rejects_unknown_kind():
    with pytest.raises(ValueError, match="norm kind"):
        lesson03.make_norm("group", 8)


def test_padded_batch_keeps_the_real_tokens_whatever_the_padded_length():
    a, pa = lesson03.padded_batch([5, 2, 3], T=6, C=4, seed=2)
    b, pb = lesson03.padded_batch([5, 2, 3], T=9, C=4, seed=2)
    assert a.shape == (3, 6, 4) and pa.sum(1).tolist() == [1, 4, 3]
    assert torch.equal(a[~pa], b[~pb]) and bool((b[pb] == 0).all())
    with pytest.raises(ValueError, match="does not fit"):
        lesson03.padded_batch([7], T=6, C=4)
