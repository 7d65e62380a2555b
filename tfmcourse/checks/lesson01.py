"""Checks for lesson 01: ``rnn_cell`` and ``last_hidden_state``."""

from __future__ import annotations

import torch
from torch import nn

from tfmcourse import seq2seq
from tfmcourse.checks._core import (
    assert_close,
    call,
    exercise,
    expect_tensor,
    generator,
    mistake,
    passed,
    randn,
    require,
)
from tfmcourse.checks._i18n import N_, tr

# ---------------------------------------------------------------- known mistakes


@mistake(
    "rnn_cell",
    "there is no tanh: the new state is tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh); without the "
    "squashing the state can grow without bound from step to step.",
)
def _rnn_no_tanh(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh


@mistake(
    "rnn_cell",
    "the previous hidden state is ignored: add h W_hhᵀ inside the tanh — it is what makes "
    "the network recurrent.",
)
def _rnn_ignores_h(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + bias_ih + bias_hh)


@mistake(
    "rnn_cell",
    "the previous hidden state is ignored and only one bias is used: add h W_hhᵀ + b_hh inside the tanh.",
)
def _rnn_ignores_h_and_bias(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + bias_ih)


@mistake("rnn_cell", "a bias is missing: nn.RNNCell adds both b_ih and b_hh inside the tanh.")
def _rnn_one_bias_hh(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + bias_ih + h @ weight_hh.T)


@mistake("rnn_cell", "a bias is missing: nn.RNNCell adds both b_ih and b_hh inside the tanh.")
def _rnn_one_bias_ih(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + h @ weight_hh.T + bias_hh)


@mistake("rnn_cell", "ReLU is used instead of tanh (nn.RNNCell's default nonlinearity is tanh).")
def _rnn_relu(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.relu(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)


@mistake("rnn_cell", "sigmoid is used instead of tanh: the state must range over (-1, 1).")
def _rnn_sigmoid(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.sigmoid(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)


@mistake("rnn_cell", "weight_hh is used without a transpose: nn.RNNCell computes h W_hhᵀ (h @ weight_hh.T).")
def _rnn_whh_not_transposed(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + bias_ih + h @ weight_hh + bias_hh)


@mistake(
    "rnn_cell",
    "the previous state is added outside the tanh (h + tanh(…)): h W_hhᵀ goes inside the tanh "
    "with the input term.",
)
def _rnn_residual(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return h + torch.tanh(x @ weight_ih.T + bias_ih + bias_hh)


def _rows(outputs, index):
    B = outputs.shape[0]
    return outputs[torch.arange(B), index]


@mistake(
    "last_hidden_state",
    "it takes the padded end (outputs[:, -1]) instead of each sequence's last real "
    "state: pick position lengths[b] - 1 of sample b (e.g. with gather or advanced indexing).",
)
def _last_padded_end(outputs, lengths):
    return outputs[:, -1]


@mistake(
    "last_hidden_state",
    "off by one: position lengths[b] is the first pad; the last real state is at lengths[b] - 1.",
)
def _last_off_by_one(outputs, lengths):
    return _rows(outputs, lengths.clamp(max=outputs.shape[1] - 1))


@mistake(
    "last_hidden_state",
    "it takes the first state (outputs[:, 0]): the summary of a sequence is the "
    "state after its last real token, position lengths[b] - 1.",
)
def _last_first(outputs, lengths):
    return outputs[:, 0]


@mistake("last_hidden_state", "it averages the states instead of taking the last real one.")
def _last_mean_real(outputs, lengths):
    S = outputs.shape[1]
    real = (torch.arange(S)[None, :] < lengths[:, None]).to(outputs.dtype)  # (B, S)
    return (outputs * real[..., None]).sum(1) / lengths[:, None].to(outputs.dtype)


@mistake(
    "last_hidden_state",
    "the batch and time axes are mixed up: outputs is (B, S, H), so sample b's last "
    "real state is outputs[b, lengths[b] - 1].",
)
def _last_axes_swapped(outputs, lengths):
    B, S, _H = outputs.shape
    idx = (lengths - 1).clamp(max=B - 1)
    return outputs[idx, torch.arange(B).clamp(max=S - 1)]


# ---------------------------------------------------------------- checks


def _rnn_inputs(g, B, I, H):
    x = randn(B, I, g=g, scale=1.2, shift=0.3)
    h = randn(B, H, g=g, scale=0.8, shift=-0.2)
    w_ih = randn(H, I, g=g, scale=0.6)
    w_hh = randn(H, H, g=g, scale=0.6)
    b_ih = randn(H, g=g, scale=0.5, shift=0.4)
    b_hh = randn(H, g=g, scale=0.5, shift=-0.7)
    return x, h, w_ih, w_hh, b_ih, b_hh


def _torch_rnn_cell(w_ih, w_hh, b_ih, b_hh) -> nn.RNNCell:
    cell = nn.RNNCell(w_ih.shape[1], w_ih.shape[0], nonlinearity="tanh")
    with torch.no_grad():
        cell.weight_ih.copy_(w_ih)
        cell.weight_hh.copy_(w_hh)
        cell.bias_ih.copy_(b_ih)
        cell.bias_hh.copy_(b_hh)
    return cell


@exercise("rnn_cell", lesson=1, points=1, title="One tanh RNN step", reference="tfmcourse.seq2seq:rnn_cell")
def check_rnn_cell(rnn_cell, *, seed: int = 0) -> None:
    name = "rnn_cell"
    g = generator(seed)
    B, I, H = 3, 5, 7  # distinct sizes: a transposed weight cannot pass by coincidence
    # 1. one step, against the reference and torch.nn.RNNCell
    args = _rnn_inputs(g, B, I, H)
    before = [a.clone() for a in args]
    got = call(name, rnn_cell, *args)
    for a, a0 in zip(args, before):
        require(
            torch.equal(a, a0), name, "it modified one of its inputs in place; compute a new tensor instead"
        )
    expect_tensor(name, got, (B, H), what="new hidden state", axes="B,H")
    assert_close(
        name,
        got,
        seq2seq.rnn_cell(*args),
        what="new hidden state",
        case="for one step (B=3, I=5, H=7)",
        mistake_args=args,
    )
    cell = _torch_rnn_cell(*args[2:])
    with torch.no_grad():
        assert_close(
            name,
            got,
            cell(args[0], args[1]),
            what="new hidden state (vs torch.nn.RNNCell)",
            case="for one step",
        )
    # 2. a zero initial state: h W_hhᵀ vanishes, only the input term and both biases remain
    x, _h, *params = _rnn_inputs(g, 2, I, H)
    h0 = torch.zeros(2, H)
    got0 = call(name, rnn_cell, x, h0, *params)
    expect_tensor(name, got0, (2, H), what="new hidden state from h = 0", axes="B,H")
    assert_close(
        name,
        got0,
        seq2seq.rnn_cell(x, h0, *params),
        what="new hidden state",
        case="from h = 0",
        mistake_args=(x, h0, *params),
    )
    # 3. unrolled over a sequence, the cell must reproduce torch.nn.RNN
    T = 6
    xs = randn(2, T, I, g=g, scale=1.2)
    h_t = randn(2, H, g=g, scale=0.5)
    w_ih, w_hh, b_ih, b_hh = _rnn_inputs(g, 2, I, H)[2:]
    rnn = nn.RNN(I, H, batch_first=True)
    with torch.no_grad():
        for p, v in zip(
            (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0), (w_ih, w_hh, b_ih, b_hh)
        ):
            p.copy_(v)
        expected, _ = rnn(xs, h_t[None])  # (2, T, H)
    h_cur = h_t
    for t in range(T):
        h_cur = call(name, rnn_cell, xs[:, t], h_cur, w_ih, w_hh, b_ih, b_hh)
        expect_tensor(name, h_cur, (2, H), what=tr("hidden state at step {t}", t=t), axes="B,H")
        assert_close(
            name,
            h_cur,
            expected[:, t],
            what=tr("hidden state at step {t} of a 6-step sequence (vs torch.nn.RNN)", t=t),
            hint="h_t = tanh(x_t W_ihᵀ + b_ih + h_(t-1) W_hhᵀ + b_hh)",
        )
    require(bool((h_cur.abs() <= 1).all()), name, "tanh states must lie between -1 and 1")
    passed(name, "matches torch.nn.RNNCell for one step and torch.nn.RNN over a 6-step sequence")


def _states_with_pads(g, lengths, S, I, H):
    """Outputs of a GRU run over padded inputs (pads included, as an unpacked GRU gives them) and the packed
    GRU's final state, which is the answer."""
    B = len(lengths)
    lengths = torch.tensor(lengths)
    x = randn(B, S, I, g=g)
    gru = nn.GRU(I, H, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():
            p.copy_(randn(*p.shape, g=g, scale=0.7))
        outputs, _ = gru(x)  # (B, S, H): pads were processed too, so the padded end is wrong
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h_n = gru(packed)  # (1, B, H): each sequence's state after its last real token
    return outputs, lengths, h_n[0]


@exercise(
    "last_hidden_state",
    lesson=1,
    points=1,
    title="Each sequence's last real state",
    reference="tfmcourse.seq2seq:last_hidden_state",
)
def check_last_hidden_state(last_hidden_state, *, seed: int = 0) -> None:
    name = "last_hidden_state"
    g = generator(seed)
    S, I, H = 7, 4, 5
    cases = [
        (N_("(lengths 5, 2, 6, 3 in a batch padded to S=7)"), [5, 2, 6, 3]),
        (N_("(lengths 7, 1, 4: one full-length sequence, one of length 1)"), [7, 1, 4]),
        (N_("(all lengths 7: no padding)"), [7, 7]),
    ]
    for label, lens in cases:
        outputs, lengths, expected = _states_with_pads(g, lens, S, I, H)
        before = (outputs.clone(), lengths.clone())
        got = call(name, last_hidden_state, outputs, lengths)
        require(
            torch.equal(outputs, before[0]) and torch.equal(lengths, before[1]),
            name,
            "it modified outputs or lengths in place; build a new tensor instead",
        )
        expect_tensor(name, got, (len(lens), H), what=tr("result {label}", label=tr(label)), axes="B,H")
        assert_close(
            name,
            got,
            seq2seq.last_hidden_state(outputs, lengths),
            what="state",
            case=label,
            mistake_args=(outputs, lengths),
        )
        assert_close(
            name, got, expected, what="state (vs the final state h_n of a packed-sequence nn.GRU)", case=label
        )
    passed(name, "equals a packed-sequence GRU's final state h_n, for padded and unpadded batches")
