"""Tests of tfmcourse.inference: the KV cache, its memory, and online-softmax attention vs torch."""

import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.gpt import GPT, GPTConfig
from tfmcourse.inference import (
    attend_with_cache,
    cache_nbytes,
    generate,
    kv_cache_bytes_per_token,
    matmul_flops,
    online_softmax_attention,
    peak_tensor_bytes,
)


def test_attend_with_cache_step_by_step_equals_causal_sdpa():
    q, k, v = torch.randn(2, 3, 8, 5), torch.randn(2, 3, 8, 5), torch.randn(2, 3, 8, 4)
    cache, outs = None, []
    for t in range(8):
        out, cache = attend_with_cache(q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], cache)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 2), F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.equal(cache[0], k) and torch.equal(cache[1], v)


@pytest.mark.parametrize("block_size", [1, 5, 8, 37, 100])
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)], ids=str)
def test_online_softmax_attention_equals_torch_sdpa(block_size, lead):
    q, k, v = torch.randn(*lead, 6, 8), torch.randn(*lead, 37, 8), torch.randn(*lead, 37, 5)
    torch.testing.assert_close(
        online_softmax_attention(q, k, v, block_size), F.scaled_dot_product_attention(q, k, v)
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_online_softmax_attention_is_finite_where_plain_exp_overflows(sign):
    q, k, v = torch.ones(1, 4, 8), torch.full((1, 16, 8), sign * 1e4 / math.sqrt(8)), torch.randn(1, 16, 3)
    k[0, 3] *= 1.01  # one key slightly ahead (or behind)
    scores = q @ k.mT / math.sqrt(8)
    naive = torch.exp(scores) @ v / torch.exp(scores).sum(-1, keepdim=True)
    assert not torch.isfinite(naive).all()
    out = online_softmax_attention(q, k, v, 5)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q.double(), k.double(), v.double()).float()
    )


def test_online_softmax_extra_memory_does_not_grow_with_s_but_full_attention_does():
    T, d = 64, 16
    q = torch.randn(1, T, d)
    peaks = {}
    for S in (256, 1024):
        k, v = torch.randn(1, S, d), torch.randn(1, S, d)
        peaks[S] = (
            peak_tensor_bytes(lambda: online_softmax_attention(q, k, v, 32)),
            peak_tensor_bytes(lambda: torch.softmax(q @ k.mT / 4, -1) @ v),
        )
    assert peaks[1024][0] < 1.2 * peaks[256][0]
    assert peaks[1024][1] > 3.5 * peaks[256][1]


@pytest.mark.parametrize("n_kv_heads", [None, 2, 1])
def test_cached_generation_equals_recomputation_and_cache_size_matches_formula(n_kv_heads):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=9, d_model=32, n_heads=4, n_kv_heads=n_kv_heads, num_layers=3, max_len=40)
    model = GPT(cfg).eval()
    prompt = torch.randint(0, 9, (2, 3))
    a, la = generate(model, prompt, 20, use_cache=False)
    b, lb = generate(model, prompt, 20, use_cache=True)
    assert torch.equal(a, b)
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)
    _, cache = model.forward_step(b[:, :-1])
    per_token = cache_nbytes(cache) / (2 * 22)
    assert per_token == kv_cache_bytes_per_token(3, cfg.kv_heads, cfg.d_head)
    assert kv_cache_bytes_per_token(3, 4, 8) / per_token == 4 / cfg.kv_heads


def test_cached_step_costs_grow_linearly_and_recomputation_quadratically():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=9, d_model=32, n_heads=4, num_layers=2, max_len=300)).eval()
    x = torch.randint(0, 9, (1, 257))
    with torch.no_grad():
        _, cache64 = model.forward_step(x[:, :64])
        _, cache256 = model.forward_step(x[:, :256])
        step = {
            n: matmul_flops(lambda c=c: model.forward_step(x[:, n : n + 1], c))
            for n, c in ((64, cache64), (256, cache256))
        }
        full = {n: matmul_flops(lambda n=n: model(x[:, : n + 1])) for n in (64, 256)}
    assert step[256] < 2 * step[64]  # per-step cost ~ const + O(T): the linear part is small here
    assert full[256] > 4 * full[64]  # recomputing T tokens: at least O(T) per step, O(T^2) in attention
    assert full[256] > 50 * step[256]
