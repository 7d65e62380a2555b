"""Converting between the course's modules and their torch.nn twins, both ways."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tfmcourse.attention import MultiHeadAttention
from tfmcourse.torch_interop import TorchTransformer, load_from_torch, to_torch, weights_from_torch
from tfmcourse.transformer import DecoderLayer, EncoderLayer, Transformer, TransformerConfig

B, S, T, D, H, F = 2, 7, 5, 24, 3, 37


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _tokens(g, vocab, shape, pad_from=None):
    t = torch.randint(1, vocab, shape, generator=g)
    for b, n in enumerate(pad_from or []):
        t[b, n:] = 0
    return t


@pytest.mark.parametrize("bias", [True, False])
def test_multihead_attention_round_trips_through_its_torch_twin(bias):
    torch.manual_seed(0)
    ours = MultiHeadAttention(D, H, bias=bias)
    twin = to_torch(ours)
    assert isinstance(twin, nn.MultiheadAttention) and twin.batch_first
    x = torch.randn(B, S, D, generator=_g(1))
    want, _ = twin(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x, x, x), want, rtol=1e-4, atol=1e-5)
    back = load_from_torch(MultiHeadAttention(D, H, bias=bias), twin)
    for name, p in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], p), name


def test_loading_names_the_mismatch():
    with pytest.raises(ValueError, match="one module has biases"):
        load_from_torch(MultiHeadAttention(D, H, bias=False), nn.MultiheadAttention(D, H, batch_first=True))
    with pytest.raises(ValueError, match="sizes differ"):
        load_from_torch(MultiHeadAttention(D, H), nn.MultiheadAttention(30, H, batch_first=True))
    with pytest.raises(ValueError, match="kdim/vdim"):
        load_from_torch(MultiHeadAttention(D, H), nn.MultiheadAttention(D, H, kdim=5, batch_first=True))
    with pytest.raises(TypeError, match="no torch twin"):
        to_torch(nn.Linear(3, 3))


@pytest.mark.parametrize("cls", [EncoderLayer, DecoderLayer])
def test_to_torch_then_weights_from_torch_gives_back_every_weight(cls):
    torch.manual_seed(2)
    ours = cls(D, H, F, norm_first=True)
    back = weights_from_torch(to_torch(ours))
    assert set(back) == set(ours.state_dict())
    for name, p in ours.state_dict().items():
        assert torch.equal(back[name], p), name


def test_weights_from_torch_uses_the_course_names():
    layer = nn.TransformerDecoderLayer(D, H, F, batch_first=True)
    names = set(weights_from_torch(layer))
    for sub in ("self_attn", "cross_attn"):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert f"{sub}.{proj}.weight" in names and f"{sub}.{proj}.bias" in names
    assert {"ff.linear1.weight", "ff.linear2.bias", "norm1.weight", "norm3.bias"} <= names
    assert names == set(DecoderLayer(D, H, F).state_dict())


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_loading_torch_default_post_ln_transformer_explains_the_extra_norm():
    cfg = TransformerConfig.tiny()
    torch_default = nn.Transformer(D, H, 2, 2, F, batch_first=True)  # always has final norms
    with pytest.raises(ValueError, match="final LayerNorm"):
        load_from_torch(Transformer(cfg), torch_default)


@pytest.mark.parametrize("norm_first", [False, True])
def test_torch_backed_twin_starts_from_the_same_weights(norm_first):
    g = _g(8)
    cfg = TransformerConfig.tiny(norm_first=norm_first, dropout=0.0)
    torch.manual_seed(3)
    ours = Transformer(cfg)
    torch.manual_seed(3)
    theirs = TorchTransformer(cfg)
    assert isinstance(theirs.encoder, nn.TransformerEncoder) and isinstance(
        theirs.decoder, nn.TransformerDecoder
    )
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    src, tgt = _tokens(g, 11, (B, S), [4, S]), _tokens(g, 13, (B, T), [T, 3])
    # train mode (dropout 0): torch takes its ordinary path; compare every position
    torch.testing.assert_close(theirs(src, tgt), ours(src, tgt), rtol=1e-4, atol=1e-5)
    # eval mode may take torch's fast path: the logits of real target positions still agree
    ours.eval(), theirs.eval()
    with torch.no_grad():
        a, b = ours(src, tgt), theirs(src, tgt)
    real = tgt != 0
    torch.testing.assert_close(b[real], a[real], rtol=1e-4, atol=1e-5)
