"""Reference scaled dot-product attention and masks: parity with torch, and the properties lessons claim."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.attention import masked_softmax, scaled_dot_product_attention
from tfmcourse.masks import causal_mask, merge_masks, padding_mask


def _qkv(seed=0, lead=(2, 3), T=5, S=7, d=6, dv=4):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*lead, T, d, generator=g),
        torch.randn(*lead, S, d, generator=g),
        torch.randn(*lead, S, dv, generator=g),
    )


def test_causal_mask_values():
    assert torch.equal(
        causal_mask(3), torch.tensor([[False, True, True], [False, False, True], [False, False, False]])
    )
    assert causal_mask(0).shape == (0, 0)
    with pytest.raises(ValueError, match="non-negative integer"):
        causal_mask(-1)


def test_padding_mask_uses_pad_id():
    tokens = torch.tensor([[5, 6, 3, 3], [3, 7, 8, 9]])
    assert torch.equal(padding_mask(tokens, 3), tokens == 3)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        padding_mask(tokens[0], 3)


@pytest.mark.parametrize("seed", range(5))
def test_matches_torch_builtin_without_mask(seed):
    q, k, v = _qkv(seed)
    out, w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w, torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(6), -1))


@pytest.mark.parametrize("seed", range(5))
def test_matches_torch_builtin_with_mask_converted_once(seed):
    q, k, v = _qkv(seed)
    g = torch.Generator().manual_seed(100 + seed)
    blocked = torch.rand(2, 3, 5, 7, generator=g) < 0.5
    blocked[..., 0] = False  # torch's built-in gives NaN on fully blocked rows; ours gives 0 (tested below)
    out, _ = scaled_dot_product_attention(q, k, v, attn_mask=blocked)
    # torch's boolean mask means "may attend": the one place the sense flips.
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=~blocked)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_rows_sum_to_one_and_blocked_is_exactly_zero():
    q, k, v = _qkv(1)
    blocked = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(7)) < 0.6
    blocked[0, 0, 1] = True  # a fully blocked row
    _, w = scaled_dot_product_attention(q, k, v, attn_mask=blocked)
    assert (w[blocked] == 0).all()
    full = blocked.all(-1)
    torch.testing.assert_close(w.sum(-1)[~full], torch.ones(int((~full).sum())))
    assert (w[full] == 0).all()


def test_fully_blocked_row_gives_zero_output_and_finite_gradients():
    q, k, v = (t.requires_grad_() for t in _qkv(2))
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[3] = True
    out, _w = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(out[..., 3, :], torch.zeros_like(out[..., 3, :]))
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()


def test_future_tokens_cannot_change_earlier_outputs():
    T = 6
    q, k, v = _qkv(3, lead=(2,), T=T, S=T)
    out1, _ = scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T))
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:] += 10 * torch.randn(2, 2, 6)
    v2[:, 4:] -= 5
    out2, _ = scaled_dot_product_attention(q, k2, v2, attn_mask=causal_mask(T))
    torch.testing.assert_close(out1[:, :4], out2[:, :4])
    assert not torch.allclose(out1[:, 4:], out2[:, 4:])


def test_pads_do_not_change_real_outputs():
    q, k, v = _qkv(4, lead=(1,), S=4)
    out, _ = scaled_dot_product_attention(q, k, v)
    kp = torch.cat([k, torch.randn(1, 3, 6)], 1)
    vp = torch.cat([v, torch.randn(1, 3, 4)], 1)
    pad = torch.tensor([[False] * 4 + [True] * 3])
    outp, _ = scaled_dot_product_attention(q, kp, vp, attn_mask=merge_masks(None, pad)[:, 0])
    torch.testing.assert_close(out, outp)


def test_samples_do_not_affect_each_other():
    q, k, v = _qkv(5, lead=(3,))
    out, _ = scaled_dot_product_attention(q, k, v)
    k2 = k.clone()
    k2[1] += 3
    out2, _ = scaled_dot_product_attention(q, k2, v)
    torch.testing.assert_close(out[[0, 2]], out2[[0, 2]])


def test_inputs_are_not_mutated():
    q, k, v = _qkv(6)
    m = causal_mask(7)[:5]
    before = [t.clone() for t in (q, k, v, m)]
    scaled_dot_product_attention(q, k, v, attn_mask=m)
    for t, b in zip((q, k, v, m), before):
        assert torch.equal(t, b)


def test_masked_softmax_all_blocked_row_is_zeros_not_nan_or_uniform():
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[False, True, False], [True, True, True]])
    w = masked_softmax(scores, mask)
    assert torch.equal(w[1], torch.zeros(3))
    assert w[0, 1] == 0
    torch.testing.assert_close(w[0, [0, 2]], torch.softmax(torch.tensor([1.0, 3.0]), -1))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(k=torch.randn(2, 7, 5)), "same feature size"),
        (dict(v=torch.randn(2, 6, 4)), "same length S"),
        (dict(attn_mask=torch.zeros(5, 7)), "bool"),
        (dict(attn_mask=torch.zeros(4, 7, dtype=torch.bool)), "does not broadcast"),
    ],
)
def test_clear_errors(bad, match):
    args = dict(q=torch.randn(2, 5, 6), k=torch.randn(2, 7, 6), v=torch.randn(2, 7, 4), attn_mask=None)
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        scaled_dot_product_attention(**args)


def test_dropout_drops_weights_before_they_meet_v_and_returns_the_weights_before_dropout():
    g = torch.Generator().manual_seed(4)
    q, k, v = (
        torch.randn(2, 5, 6, generator=g),
        torch.randn(2, 7, 6, generator=g),
        torch.randn(2, 7, 4, generator=g),
    )
    plain_out, plain_w = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    out, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    torch.manual_seed(0)
    dropped = F.dropout(plain_w, 0.5)
    assert torch.equal(w, plain_w)
    torch.testing.assert_close(out, dropped @ v)
    assert not torch.allclose(out, plain_out)
