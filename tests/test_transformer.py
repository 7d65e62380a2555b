"""Reference Transformer: parity with torch.nn, independent stacks, incremental decoding, causality."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tfmcourse.masks import causal_mask
from tfmcourse.torch_interop import load_from_torch, to_torch
from tfmcourse.transformer import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForward,
    Transformer,
    TransformerConfig,
    base_config,
    count_model_parameters,
)

B, S, T, D, H, F = 2, 7, 5, 24, 3, 37


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _pads(g):
    src_pad = torch.zeros(B, S, dtype=torch.bool)
    src_pad[0, 4:] = True
    tgt_pad = torch.zeros(B, T, dtype=torch.bool)
    tgt_pad[1, 3:] = True
    return src_pad, tgt_pad


def _randomise(module: nn.Module, g: torch.Generator) -> None:
    """Non-trivial values everywhere (LayerNorm gains/biases too) so swapped pieces show."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + 0.1)


def test_feedforward_is_linear_relu_linear():
    g = _g()
    ff = FeedForward(D, F)
    x = torch.randn(B, T, D, generator=g)
    expected = ff.linear2(torch.relu(ff.linear1(x)))
    torch.testing.assert_close(ff(x), expected)
    assert sum(p.numel() for p in ff.parameters()) == 2 * D * F + D + F


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first):
    g = _g(1)
    ours = EncoderLayer(D, H, F, dropout=0.0, norm_first=norm_first)
    _randomise(ours, g)
    theirs = to_torch(ours).train()  # train mode with p=0: no fast path, same maths
    assert isinstance(theirs, nn.TransformerEncoderLayer)
    x = torch.randn(B, S, D, generator=g) + 0.5
    src_pad, _ = _pads(g)
    for mask in (None, src_pad):
        torch.testing.assert_close(
            ours(x, src_key_padding_mask=mask), theirs(x, src_key_padding_mask=mask), rtol=1e-4, atol=1e-5
        )
    # the other direction: torch's randomly initialised layer loaded into ours
    fresh = nn.TransformerEncoderLayer(D, H, F, dropout=0.0, batch_first=True, norm_first=norm_first)
    mine = load_from_torch(EncoderLayer(D, H, F, norm_first=norm_first), fresh)
    torch.testing.assert_close(
        mine(x, src_key_padding_mask=src_pad), fresh(x, src_key_padding_mask=src_pad), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch_with_unequal_lengths(norm_first):
    g = _g(2)
    ours = DecoderLayer(D, H, F, dropout=0.0, norm_first=norm_first)
    _randomise(ours, g)
    theirs = to_torch(ours).train()
    assert isinstance(theirs, nn.TransformerDecoderLayer)
    y, memory = torch.randn(B, T, D, generator=g) - 0.3, torch.randn(B, S, D, generator=g) + 0.2
    src_pad, tgt_pad = _pads(g)
    kw = dict(tgt_mask=causal_mask(T), tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
    torch.testing.assert_close(ours(y, memory, **kw), theirs(y, memory, **kw), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours(y, memory), theirs(y, memory), rtol=1e-4, atol=1e-5)
    _out, w = ours(y, memory, **kw, need_weights=True)
    assert w.shape == (B, H, T, S)
    assert (w[0][..., 4:] == 0).all(), "padded memory positions get exactly zero cross-attention"
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, T))


@pytest.mark.parametrize("cls", [Encoder, Decoder])
def test_stacks_have_independent_parameters(cls):
    stack = cls(D, H, F, num_layers=3)
    ptrs = [{p.data_ptr() for p in layer.parameters()} for layer in stack.layers]
    assert all(not (ptrs[i] & ptrs[j]) for i in range(3) for j in range(i + 1, 3))
    per_layer = sum(p.numel() for p in stack.layers[0].parameters())
    assert sum(p.numel() for p in stack.parameters()) == 3 * per_layer
    with torch.no_grad():
        stack.layers[0].norm1.weight.add_(1.0)
    assert not torch.equal(stack.layers[0].norm1.weight, stack.layers[1].norm1.weight)


@pytest.mark.parametrize("norm_first", [False, True])
def test_final_norm_only_for_pre_ln(norm_first):
    assert (Encoder(D, H, F, 2, norm_first=norm_first).norm is not None) == norm_first
    assert (Decoder(D, H, F, 2, norm_first=norm_first).norm is not None) == norm_first


def _tokens(g, vocab, shape, pad_from=None):
    t = torch.randint(1, vocab, shape, generator=g)
    for b, n in enumerate(pad_from or []):
        t[b, n:] = 0
    return t


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("tie", [False, True])
def test_whole_model_matches_nn_transformer(norm_first, tie):
    g = _g(3)
    cfg = TransformerConfig.tiny(src_vocab=11, tgt_vocab=13, norm_first=norm_first, tie_weights=tie)
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    twin = to_torch(model).train()
    assert isinstance(twin, nn.Transformer)
    src, tgt = _tokens(g, 11, (B, S), [4, S]), _tokens(g, 13, (B, T), [T, 3])
    x, y = model._embed(src, model.src_embed), model._embed(tgt, model.tgt_embed)
    out = twin(
        x,
        y,
        tgt_mask=causal_mask(T),
        src_key_padding_mask=src == 0,
        tgt_key_padding_mask=tgt == 0,
        memory_key_padding_mask=src == 0,
    )
    torch.testing.assert_close(model(src, tgt), model.generator(out), rtol=1e-4, atol=1e-5)
    # and back: a fresh model loaded from the twin gives the same logits
    other = Transformer(cfg).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in other.encoder.parameters():
            p.zero_()
    load_from_torch(other, twin)
    torch.testing.assert_close(other(src, tgt), model(src, tgt))


def test_weight_tying_shares_one_matrix():
    shared = Transformer(TransformerConfig.tiny(src_vocab=13, tgt_vocab=13, tie_weights=True))
    assert shared.generator.weight is shared.tgt_embed.weight is shared.src_embed.weight
    apart = Transformer(TransformerConfig.tiny(src_vocab=11, tgt_vocab=13, tie_weights=True))
    assert apart.generator.weight is apart.tgt_embed.weight
    assert apart.src_embed.weight is not apart.tgt_embed.weight
    untied = Transformer(TransformerConfig.tiny(src_vocab=13, tgt_vocab=13))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(untied) - n(shared) == 2 * 13 * 24


@pytest.mark.parametrize("norm_first", [False, True])
def test_incremental_decoding_equals_full_pass(norm_first):
    g = _g(4)
    torch.manual_seed(1)
    model = Transformer(TransformerConfig.tiny(norm_first=norm_first)).eval()
    src = _tokens(g, 11, (B, S), [5, S])
    tgt = _tokens(g, 13, (B, 6))
    memory = model.encode(src)
    full = model.decode(tgt, memory, src)
    pieces, cache = [], None
    for a, b in [(0, 1), (1, 2), (2, 4), (4, 5), (5, 6)]:  # one at a time and in chunks
        logits, cache = model.decode_step(tgt[:, a:b], memory, src, cache)
        pieces.append(logits)
    assert cache.length == 6
    assert cache.self_kv[0].keys.shape == cache.self_kv[0].values.shape == (B, 3, 6, 8)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-4, atol=1e-5)


def test_future_tokens_cannot_change_earlier_logits():
    g = _g(5)
    model = Transformer(TransformerConfig.tiny()).eval()
    src, tgt = _tokens(g, 11, (B, S)), _tokens(g, 13, (B, T))
    changed = tgt.clone()
    changed[:, 3:] = (changed[:, 3:] % 12) + 1  # different real tokens at positions 3, 4
    a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_source_pads_do_not_change_the_output():
    g = _g(6)
    model = Transformer(TransformerConfig.tiny()).eval()
    src, tgt = _tokens(g, 11, (B, 5)), _tokens(g, 13, (B, T))
    padded = torch.cat([src, torch.zeros(B, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(src, tgt), model(padded, tgt), rtol=1e-4, atol=1e-5)


def test_cross_attention_weights_per_layer():
    g = _g(7)
    model = Transformer(TransformerConfig.tiny(num_decoder_layers=3)).eval()
    src, tgt = _tokens(g, 11, (B, S), [4, S]), _tokens(g, 13, (B, T))
    logits, cross = model.decode(tgt, model.encode(src), src, need_weights=True)
    assert len(cross) == 3 and all(w.shape == (B, 3, T, S) for w in cross)
    assert all((w[0, ..., 4:] == 0).all() for w in cross)
    torch.testing.assert_close(logits, model(src, tgt))


def test_base_model_parameter_count():
    c = base_config()
    d, ff, V = c.d_model, c.d_ff, c.src_vocab
    attn = 4 * (d * d + d)
    ffn = d * ff + ff + ff * d + d
    enc = attn + ffn + 2 * 2 * d
    dec = 2 * attn + ffn + 3 * 2 * d
    expected = 6 * enc + 6 * dec + V * d + V  # one shared embedding matrix + output bias
    assert count_model_parameters(c) == expected
    assert 60e6 < expected < 66e6  # the paper reports 65M


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(d_model=24, n_heads=5), "divisible by n_heads"),
        (dict(d_model=21, n_heads=3), "even"),
        (dict(dropout=1.0), "dropout"),
        (dict(pad_id=20), "pad_id"),
        (dict(num_encoder_layers=0), "num_encoder_layers"),
        (dict(d_ff=0), "d_ff"),
    ],
)
def test_bad_config_gives_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerConfig(src_vocab=11, tgt_vocab=13, **kwargs)


def test_config_is_frozen_and_tiny_has_odd_sizes():
    c = TransformerConfig.tiny()
    assert (c.d_model, c.n_heads, c.d_ff) == (24, 3, 37)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.d_model = 32  # type: ignore[misc]
    assert c.replace(d_model=30).d_model == 30


def test_too_long_sequence_is_a_clear_error():
    model = Transformer(TransformerConfig.tiny(max_len=8))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 9, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))


def test_full_pass_and_cached_step_use_the_one_attention_core(monkeypatch):
    import tfmcourse.attention as attention

    calls = []
    core = attention.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        calls.append((q.shape[-2], k.shape[-2]))  # (queries, keys) of each call
        return core(q, k, v, *args, **kwargs)

    monkeypatch.setattr(attention, "scaled_dot_product_attention", spy)
    g = _g(9)
    model = Transformer(TransformerConfig.tiny()).eval()
    src, tgt = _tokens(g, 11, (B, S)), _tokens(g, 13, (B, T))
    with torch.no_grad():
        model(src, tgt)
        assert calls == [(S, S)] * 2 + [(T, T), (T, S)] * 2  # encoder self, decoder self + cross
        calls.clear()
        memory = model.encode(src)
        calls.clear()
        _, cache = model.decode_step(tgt[:, :2], memory, src)
        model.decode_step(tgt[:, 2:3], memory, src, cache)
    assert calls == [(2, 2), (2, S)] * 2 + [(1, 3), (1, S)] * 2


def test_full_pass_calls_the_attention_modules_so_their_hooks_see_the_memory():
    g = _g(10)
    model = Transformer(TransformerConfig.tiny()).eval()
    src, tgt = _tokens(g, 11, (B, S), [4, S]), _tokens(g, 13, (B, T))
    keys = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: keys.__setitem__(name, args[1]))
        for name, m in model.named_modules()
        if name.endswith("_attn")
    ]
    with torch.no_grad():
        memory = model.encode(src)
        model.decode(tgt, memory, src)
    for h in hooks:
        h.remove()
    assert len(keys) == 2 + 2 * 2  # every self- and cross-attention module ran through its forward
    assert all(torch.equal(keys[f"decoder.layers.{i}.cross_attn"], memory) for i in range(2))
