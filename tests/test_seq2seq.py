"""Reference code of lessons 01-02: parity with torch, masking properties, the models, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tfmcourse import seq2seq
from tfmcourse.data.sequences import ReversalTask, make_batch
from tfmcourse.seq2seq import (
    AdditiveAttention,
    Seq2Seq,
    additive_scores,
    bahdanau_attention,
    dot_scores,
    general_scores,
    last_hidden_state,
    rnn_cell,
)


@pytest.fixture
def g():
    return torch.Generator().manual_seed(0)


# ---------------------------------------------------------------- rnn_cell


@pytest.mark.parametrize("bias", [True, False])
def test_rnn_cell_matches_torch_rnncell(g, bias):
    cell = nn.RNNCell(5, 7, bias=bias)
    x, h = torch.randn(3, 5, generator=g), torch.randn(3, 7, generator=g)
    got = rnn_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    torch.testing.assert_close(got, cell(x, h))


def test_rnn_cell_unrolled_matches_torch_rnn(g):
    rnn = nn.RNN(4, 6, batch_first=True)
    xs, h = torch.randn(2, 9, 4, generator=g), torch.zeros(2, 6)
    expected, h_n = rnn(xs)
    for t in range(9):
        h = rnn_cell(xs[:, t], h, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        torch.testing.assert_close(h, expected[:, t])
    torch.testing.assert_close(h, h_n[0])


def test_rnn_cell_validates_shapes():
    x, h = torch.zeros(2, 5), torch.zeros(2, 7)
    with pytest.raises(ValueError, match="weight_ih must be"):
        rnn_cell(x, h, torch.zeros(5, 7), torch.zeros(7, 7))
    with pytest.raises(ValueError, match="batch size"):
        rnn_cell(x, torch.zeros(3, 7), torch.zeros(7, 5), torch.zeros(7, 7))
    with pytest.raises(ValueError, match="biases"):
        rnn_cell(x, h, torch.zeros(7, 5), torch.zeros(7, 7), torch.zeros(5))


# ---------------------------------------------------------------- last_hidden_state


def test_last_hidden_state_equals_packed_gru_final_state(g):
    gru = nn.GRU(4, 6, batch_first=True)
    x = torch.randn(4, 8, 4, generator=g)
    lengths = torch.tensor([8, 3, 1, 5])
    outputs, _ = gru(x)  # unpacked: pads processed too
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, h_n = gru(packed)
    torch.testing.assert_close(last_hidden_state(outputs, lengths), h_n[0])
    assert not torch.allclose(outputs[:, -1], h_n[0]), "the padded end is not the answer"


def test_last_hidden_state_validates_lengths():
    out = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"1\.\.S=5"):
        last_hidden_state(out, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"1\.\.S=5"):
        last_hidden_state(out, torch.tensor([6, 2]))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        last_hidden_state(out, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="integers"):
        last_hidden_state(out, torch.tensor([1.0, 2.0]))


# ---------------------------------------------------------------- scores and attention


def _qkv(g, B=2, S=7, Dq=5, Dk=6, Dv=4, A=3):
    return (
        torch.randn(B, Dq, generator=g),
        torch.randn(B, S, Dk, generator=g),
        torch.randn(B, S, Dv, generator=g),
        torch.randn(A, Dq, generator=g),
        torch.randn(A, Dk, generator=g),
        torch.randn(A, generator=g),
    )


def test_additive_scores_matches_a_loop_and_linear_layers(g):
    q, k, _, Wq, Wk, v = _qkv(g)
    got = additive_scores(q, k, Wq, Wk, v)
    assert got.shape == (2, 7)
    loop = torch.tensor(
        [[float(v @ torch.tanh(Wq @ q[b] + Wk @ k[b, j])) for j in range(7)] for b in range(2)]
    )
    torch.testing.assert_close(got, loop)
    module = AdditiveAttention(5, 6, 3)
    with torch.no_grad():
        module.W_query.weight.copy_(Wq)
        module.W_key.weight.copy_(Wk)
        module.v.copy_(v)
    torch.testing.assert_close(module.scores(q, k), got)


def test_additive_scores_validates_shapes(g):
    q, k, _, Wq, Wk, v = _qkv(g)
    with pytest.raises(ValueError, match="W_query must be"):
        additive_scores(q, k, Wq.T, Wk, v)
    with pytest.raises(ValueError, match="W_key must be"):
        additive_scores(q, k, Wq, Wk[:, :-1], v)
    with pytest.raises(ValueError, match="keys must be"):
        additive_scores(q, k[0], Wq, Wk, v)
    with pytest.raises(ValueError, match="disagree on B"):
        additive_scores(q[:1], k, Wq, Wk, v)


def test_dot_and_general_scores(g):
    q, k = torch.randn(2, 6, generator=g), torch.randn(2, 7, 6, generator=g)
    torch.testing.assert_close(dot_scores(q, k), torch.einsum("bd,bsd->bs", q, k))
    torch.testing.assert_close(general_scores(q, k, torch.eye(6)), dot_scores(q, k))
    W = torch.randn(6, 6, generator=g)
    torch.testing.assert_close(general_scores(q, k, W), torch.einsum("bd,de,bse->bs", q, W, k))
    with pytest.raises(ValueError, match="same size"):
        dot_scores(torch.randn(2, 5), k)
    with pytest.raises(ValueError, match="W must be"):
        general_scores(q, k, torch.randn(5, 6))


def test_bahdanau_attention_masking_properties(g):
    q, k, val, Wq, Wk, v = _qkv(g, B=3)
    pad = torch.arange(7)[None, :] >= torch.tensor([7, 3, 0])[:, None]  # third sample: all pads
    context, w = bahdanau_attention(q, k, val, Wq, Wk, v, key_padding_mask=pad)
    assert context.shape == (3, 4) and w.shape == (3, 7)
    assert (w[pad] == 0).all(), "pads get exactly zero weight"
    torch.testing.assert_close(w[:2].sum(-1), torch.ones(2))
    assert (w[2] == 0).all() and (context[2] == 0).all() and not torch.isnan(context).any()
    k2, v2 = k.masked_fill(pad[..., None], 1e3), val.masked_fill(pad[..., None], -1e3)
    c2, w2 = bahdanau_attention(q, k2, v2, Wq, Wk, v, key_padding_mask=pad)
    torch.testing.assert_close(c2, context)
    torch.testing.assert_close(w2, w)
    # without a mask: a plain softmax of the energies, and the context averages the *values*
    c3, w3 = bahdanau_attention(q, k, val, Wq, Wk, v)
    torch.testing.assert_close(w3, torch.softmax(additive_scores(q, k, Wq, Wk, v), -1))
    torch.testing.assert_close(c3, torch.einsum("bs,bsd->bd", w3, val))


def test_bahdanau_attention_validates(g):
    q, k, val, Wq, Wk, v = _qkv(g)
    with pytest.raises(ValueError, match="values must be"):
        bahdanau_attention(q, k, val[:, :5], Wq, Wk, v)
    with pytest.raises(ValueError, match="key_padding_mask must be"):
        bahdanau_attention(q, k, val, Wq, Wk, v, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        bahdanau_attention(q, k, val, Wq, Wk, v, key_padding_mask=torch.zeros(2, 7))


# ---------------------------------------------------------------- encoder and models

TASK = ReversalTask()


def _batch(seed=0, n=5):
    return make_batch(TASK.pairs(n, seed=seed), TASK.vocab)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_final_state_is_the_last_real_state(bidirectional):
    torch.manual_seed(0)
    enc = seq2seq.Encoder(len(TASK.vocab), 8, 10, bidirectional=bidirectional)
    b = _batch()
    mem = enc(b.src, b.src_lengths)
    assert mem.states.shape == (5, b.src.shape[1], 10) and mem.final.shape == (5, 10)
    assert torch.equal(mem.pad_mask, b.src == TASK.vocab.pad_id)
    assert (mem.states[mem.pad_mask] == 0).all(), "pads never enter a state"
    if not bidirectional:
        torch.testing.assert_close(mem.final, last_hidden_state(mem.states, b.src_lengths))
    else:  # [forward after the last token ; backward after the first]
        torch.testing.assert_close(mem.final[:, :5], last_hidden_state(mem.states[..., :5], b.src_lengths))
        torch.testing.assert_close(mem.final[:, 5:], mem.states[:, 0, 5:])


@pytest.mark.parametrize("kind", seq2seq.ATTENTION_KINDS)
def test_model_shapes_and_padding_invariance(kind):
    torch.manual_seed(0)
    model = Seq2Seq(
        len(TASK.vocab), emb_size=8, hidden_size=12, attention=kind, bidirectional=kind is not None
    ).eval()
    b = _batch()
    logits, w = model(b.src, b.src_lengths, b.tgt_in)
    B, S = b.src.shape
    assert logits.shape == (B, b.tgt_in.shape[1], len(TASK.vocab))
    if kind is None:
        assert w is None
    else:
        assert w.shape == (B, b.tgt_in.shape[1], S)
        assert (w.masked_select(b.src.eq(0)[:, None, :].expand_as(w)) == 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(B, b.tgt_in.shape[1]))
    # one sample alone (no extra pads) gives the same logits as inside the padded batch
    i = int(b.src_lengths.argmin())
    n = int(b.src_lengths[i])
    alone, _ = model(b.src[i : i + 1, :n], b.src_lengths[i : i + 1], b.tgt_in[i : i + 1])
    torch.testing.assert_close(alone, logits[i : i + 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", [None, "additive"])
def test_greedy_decode_is_consistent_with_teacher_forcing(kind):
    torch.manual_seed(1)
    model = Seq2Seq(len(TASK.vocab), emb_size=8, hidden_size=12, attention=kind).eval()
    b = _batch(seed=4)
    tokens, w = model.greedy_decode(b.src, b.src_lengths, max_len=6)
    assert tokens.shape[0] == 5 and tokens.shape[1] <= 6
    # feeding the generated tokens back with teacher forcing reproduces them step by step
    tgt_in = torch.cat([torch.full((5, 1), TASK.vocab.bos_id), tokens[:, :-1]], 1)
    logits, w_tf = model(b.src, b.src_lengths, tgt_in)
    live = torch.ones_like(tokens, dtype=torch.bool)
    for t in range(1, tokens.shape[1]):
        live[:, t] = live[:, t - 1] & (tokens[:, t - 1] != TASK.vocab.eos_id)
    assert torch.equal(logits.argmax(-1)[live], tokens[live])
    assert (tokens[~live] == TASK.vocab.pad_id).all(), "after EOS a row is padded"
    if kind is not None:
        torch.testing.assert_close(w, w_tf)


def test_model_validation():
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2Seq(13, attention="luong")
    with pytest.raises(ValueError, match="even hidden_size"):
        Seq2Seq(13, hidden_size=7, bidirectional=True)
    model = Seq2Seq(13)
    b = _batch()
    with pytest.raises(ValueError, match="src_lengths must be in"):
        model.encode(b.src, b.src_lengths * 0)
    with pytest.raises(ValueError, match="tgt_in must be"):
        model(b.src, b.src_lengths, b.tgt_in[:2])
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(b.src, b.src_lengths, 0)
