"""Tests of split_heads, merge_heads and MultiHeadAttention (lesson 07) against torch."""

import pytest
import torch
from torch import nn

from tfmcourse.attention import MultiHeadAttention, merge_heads, split_heads
from tfmcourse.masks import causal_mask
from tfmcourse.torch_interop import load_from_torch

B, T, S, D, H = 2, 5, 7, 24, 3  # distinct sizes: a transposed axis cannot pass by accident


def _pair(seed=0, bias=True):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(D, H, batch_first=True, bias=bias)
    if bias:  # torch initialises biases to zero: make them matter
        with torch.no_grad():
            ref.in_proj_bias.normal_(0, 0.3)
            ref.out_proj.bias.normal_(0, 0.3)
    mine = load_from_torch(MultiHeadAttention(D, H, bias=bias), ref)
    return mine.eval(), ref.eval()


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, T, D, generator=g),
        torch.randn(B, S, D, generator=g),
        torch.randn(B, S, D, generator=g),
    )


def test_split_and_merge_heads_shapes_and_inverse():
    x = torch.randn(B, T, D)
    h = split_heads(x, H)
    assert h.shape == (B, H, T, D // H)
    assert torch.equal(h[:, 1], x[..., 8:16])  # head 1 = features 8..15 of every position
    assert torch.equal(merge_heads(h), x)


@pytest.mark.parametrize("bad", [torch.randn(T, D), torch.randn(B, T, D, 1)])
def test_split_heads_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        split_heads(bad, H)


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible"):
        split_heads(torch.randn(B, T, 25), H)
    with pytest.raises(ValueError, match="d_head"):
        merge_heads(torch.randn(B, T, D))


def test_constructor_rejects_indivisible_width():
    with pytest.raises(ValueError, match=r"d_model=25 must be divisible by n_heads=3"):
        MultiHeadAttention(25, 3)
    with pytest.raises(ValueError, match="positive"):
        MultiHeadAttention(24, 0)


def test_forward_rejects_bad_shapes():
    mine, _ = _pair()
    q, k, v = _inputs()
    with pytest.raises(ValueError, match="query must be"):
        mine(q[0], k, v)
    with pytest.raises(ValueError, match="key must be"):
        mine(q, k[..., :10], v)
    with pytest.raises(ValueError, match="must share"):
        mine(q, k, v[:, :4])
    with pytest.raises(TypeError, match="bool"):
        mine(q, k, v, key_padding_mask=torch.zeros(B, S))


def _padding():
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[0, 4:] = True
    pad[1, 6:] = True
    return pad


CASES = {
    "no mask": (None, None),
    "padding": (None, "pad"),
    "causal-style (T, S)": ("causal", None),
    "both": ("causal", "pad"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_parity_with_torch_cross_attention(case, bias):
    mine, ref = _pair(bias=bias)
    q, k, v = _inputs()
    am, kpm = CASES[case]
    am = torch.ones(T, S, dtype=torch.bool).triu(1 + S - T) if am else None
    kpm = _padding() if kpm else None
    out, w = mine(q, k, v, attn_mask=am, key_padding_mask=kpm, need_weights=True)
    r_out, r_w = ref(
        q, k, v, attn_mask=am, key_padding_mask=kpm, need_weights=True, average_attn_weights=False
    )
    assert out.shape == (B, T, D) and w.shape == (B, H, T, S)
    torch.testing.assert_close(out, r_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w, r_w, rtol=1e-4, atol=1e-5)
    if kpm is not None:
        assert bool((w.masked_select(kpm[:, None, None, :].expand_as(w)) == 0).all())


def test_parity_with_torch_causal_self_attention_and_default_return():
    mine, ref = _pair(seed=3)
    x = _inputs()[1]
    m = causal_mask(S)
    out = mine(x, x, x, attn_mask=m, key_padding_mask=_padding())
    assert isinstance(out, torch.Tensor)  # need_weights=False: just the output
    r_out, _ = ref(x, x, x, attn_mask=m, key_padding_mask=_padding())
    torch.testing.assert_close(out, r_out, rtol=1e-4, atol=1e-5)


def test_gradients_match_torch():
    mine, ref = _pair(seed=4)
    q, k, v = _inputs()
    mine(q, k, v, key_padding_mask=_padding()).square().sum().backward()
    ref(q, k, v, key_padding_mask=_padding())[0].square().sum().backward()
    torch.testing.assert_close(mine.q_proj.weight.grad, ref.in_proj_weight.grad[:D], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mine.out_proj.weight.grad, ref.out_proj.weight.grad, rtol=1e-4, atol=1e-5)


def test_fully_blocked_row_gives_zeros_not_nan():
    mine, _ = _pair()
    q, k, v = _inputs()
    am = torch.zeros(T, S, dtype=torch.bool)
    am[2] = True
    out, w = mine(q, k, v, attn_mask=am, need_weights=True)
    assert not torch.isnan(out).any() and bool((w[:, :, 2] == 0).all())


def test_parameter_count_equals_one_full_width_head():
    for heads in (1, 2, 3, 4, 6, 8):
        mha = MultiHeadAttention(D, heads)
        assert mha.d_head == D // heads
        assert sum(p.numel() for p in mha.parameters()) == 4 * (D * D + D)
    torch_count = sum(p.numel() for p in nn.MultiheadAttention(D, H, batch_first=True).parameters())
    assert torch_count == 4 * (D * D + D)
    assert sum(p.numel() for p in MultiHeadAttention(D, H, bias=False).parameters()) == 4 * D * D


def test_forward_does_not_mutate_inputs():
    mine, _ = _pair()
    q, k, v = _inputs()
    copies = [t.clone() for t in (q, k, v)]
    mine(q, k, v, key_padding_mask=_padding())
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), copies))
