"""Tests of tfmcourse.gpt: causality, incremental decoding, weight tying, and parity with torch's layers."""

import pytest
import torch
from torch import nn

from tfmcourse.attention import split_heads
from tfmcourse.gpt import GPT, Block, GPTConfig
from tfmcourse.positional import apply_rope

CONFIGS = [
    dict(positions="rope", norm="rms"),
    dict(positions="learned", norm="layer", norm_first=False),
    dict(positions="sinusoidal", norm="layer"),
    dict(positions="rope", n_kv_heads=1),
    dict(positions="rope", n_kv_heads=2, norm_first=False),
]


def _model(**kw):
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=11, d_model=24, n_heads=4, d_ff=37, num_layers=2, max_len=20, **kw)
    ).eval()


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_gpt_is_causal(kw):
    model = _model(**kw)
    x = torch.randint(0, 11, (2, 9))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 3) % 11  # change the future only
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :6], model(y)[:, :6])
        assert not torch.allclose(model(x)[:, 6:], model(y)[:, 6:])


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_forward_step_in_pieces_equals_forward(kw):
    model = _model(**kw)
    x = torch.randint(0, 11, (3, 12))
    with torch.no_grad():
        full = model(x)
        parts, cache = [], None
        for a, b in [(0, 5), (5, 6), (6, 7), (7, 12)]:
            logits, cache = model.forward_step(x[:, a:b], cache)
            parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-5, atol=1e-5)
    G = model.config.kv_heads
    assert cache[0].keys.shape == cache[0].values.shape == (3, G, 12, model.config.d_head)


def test_weight_tying_shares_one_matrix():
    model = _model()
    assert model.lm_head.weight is model.embed.weight
    untied = GPT(GPTConfig(vocab_size=11, d_model=24, n_heads=4, tie_weights=False))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    tied = GPT(GPTConfig(vocab_size=11, d_model=24, n_heads=4))
    assert n(untied) - n(tied) == 11 * 24


def test_grouped_query_attention_shrinks_the_key_value_projections():
    mha, gqa = _model(), _model(n_kv_heads=2)
    assert gqa.blocks[0].self_attn.k_proj.weight.shape == (2 * 6, 24)
    assert mha.blocks[0].self_attn.k_proj.weight.shape == (24, 24)


@pytest.mark.parametrize("norm_first", [False, True])
def test_block_equals_torch_encoder_layer_with_a_causal_mask(norm_first):
    """Without RoPE, a GPT block is nn.TransformerEncoderLayer run with a causal mask."""
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=5, d_model=24, n_heads=3, d_ff=37, norm="layer", positions="learned", norm_first=norm_first
    )
    mine = Block(cfg).eval()
    theirs = nn.TransformerEncoderLayer(
        24, 3, 37, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    a = mine.self_attn
    with torch.no_grad():
        theirs.self_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        theirs.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        theirs.self_attn.out_proj.weight.copy_(a.out_proj.weight)
        theirs.self_attn.out_proj.bias.copy_(a.out_proj.bias)
        for t, m in [
            (theirs.linear1, mine.ff.linear1),
            (theirs.linear2, mine.ff.linear2),
            (theirs.norm1, mine.norm1),
            (theirs.norm2, mine.norm2),
        ]:
            t.weight.copy_(m.weight)
            t.bias.copy_(m.bias)
    x = torch.randn(2, 7, 24)
    causal = torch.ones(7, 7, dtype=torch.bool).triu(1)
    with torch.no_grad():
        torch.testing.assert_close(
            mine(x, torch.arange(7))[0], theirs(x, src_mask=causal), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(d_model=30, n_heads=4), "divisible"),
        (dict(n_kv_heads=3), "must divide"),
        (dict(norm="batch"), "norm"),
        (dict(positions="alibi"), "positions"),
    ],
)
def test_config_validates_itself(kw, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(vocab_size=5, **kw)


def test_too_long_input_raises():
    with pytest.raises(ValueError, match="max_len"):
        _model()(torch.zeros(1, 21, dtype=torch.long))


def test_rope_from_the_table_of_angles_equals_apply_rope():
    model = _model(positions="rope")
    attn = model.blocks[0].self_attn
    x, positions = torch.randn(2, 7, 24), torch.arange(5, 12)
    with torch.no_grad():
        _, (k, _) = attn(x, positions)
        expected = apply_rope(split_heads(attn.k_proj(x), 4), positions)
    torch.testing.assert_close(k, expected)


def test_forward_step_writes_keys_and_values_in_place_into_a_cache_allocated_once():
    model = _model()
    x = torch.randint(0, 11, (2, 20))
    with torch.no_grad():
        _, cache = model.forward_step(x[:, :4])
        buffers = [(layer.k_cache.data_ptr(), layer.v_cache.data_ptr()) for layer in cache]
        for t in range(4, 20):
            _, same = model.forward_step(x[:, t : t + 1], cache)
            assert same is cache
        assert [(layer.k_cache.data_ptr(), layer.v_cache.data_ptr()) for layer in cache] == buffers
        assert all(layer.length == 20 and layer.keys.shape[2] == 20 for layer in cache)
        with pytest.raises(ValueError, match="max_len=20"):
            model.forward_step(x[:, :1], cache)
