"""Implementations of the lesson 01 exercises, right and wrong, written independently."""

import torch

from tests.mutants import correct, wrong

# ---- rnn_cell


@correct("rnn_cell")
def rnn_cell_einsum(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    pre = torch.einsum("bi,hi->bh", x, weight_ih) + torch.einsum("bk,hk->bh", h, weight_hh)
    return torch.tanh(pre + bias_ih + bias_hh)


@correct("rnn_cell")
def rnn_cell_float64_concat(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    W = torch.cat([weight_ih, weight_hh], dim=1).double()  # (H, I + H)
    z = torch.cat([x, h], dim=1).double() @ W.T + (bias_ih + bias_hh).double()
    return ((torch.exp(2 * z) - 1) / (torch.exp(2 * z) + 1)).to(x.dtype)


@correct("rnn_cell")
def rnn_cell_functional_linear(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    F = torch.nn.functional
    return torch.tanh(F.linear(x, weight_ih, bias_ih) + F.linear(h, weight_hh, bias_hh))


@wrong("rnn_cell", "no tanh")
def rnn_cell_linear(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh


@wrong("rnn_cell", "previous hidden state is ignored")
def rnn_cell_feedforward(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + bias_ih + bias_hh)


@wrong("rnn_cell", "previous hidden state is ignored")
def rnn_cell_feedforward_one_bias(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + bias_ih)


@wrong("rnn_cell", "bias is missing")
def rnn_cell_no_bias_hh(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + h @ weight_hh.T + bias_ih)


@wrong("rnn_cell", "ReLU")
def rnn_cell_relu(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.relu(x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh)


@wrong("rnn_cell", "sigmoid")
def rnn_cell_sigmoid(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.sigmoid(x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh)


@wrong("rnn_cell", "without a transpose")
def rnn_cell_whh_untransposed(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih.T + h @ weight_hh + bias_ih + bias_hh)


@wrong("rnn_cell", "outside the tanh")
def rnn_cell_skip(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return h + torch.tanh(x @ weight_ih.T + bias_ih + bias_hh)


@wrong("rnn_cell", "calling it raised")
def rnn_cell_ih_untransposed(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return torch.tanh(x @ weight_ih + h @ weight_hh.T + bias_ih + bias_hh)


@wrong("rnn_cell", "modified one of its inputs")
def rnn_cell_in_place(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    h.copy_(torch.tanh(x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh))
    return h.clone()


# ---- last_hidden_state


@correct("last_hidden_state")
def last_hidden_state_loop(outputs, lengths):
    return torch.stack([outputs[b, int(n) - 1] for b, n in enumerate(lengths)])


@correct("last_hidden_state")
def last_hidden_state_onehot_float64(outputs, lengths):
    S = outputs.shape[1]
    pick = torch.nn.functional.one_hot(lengths.long() - 1, S).double()  # (B, S)
    return torch.einsum("bs,bsh->bh", pick, outputs.double()).to(outputs.dtype)


@correct("last_hidden_state")
def last_hidden_state_gather(outputs, lengths):
    idx = (lengths - 1)[:, None, None].expand(-1, 1, outputs.size(2))
    return torch.gather(outputs, 1, idx)[:, 0]


@wrong("last_hidden_state", "padded end")
def last_hidden_state_padded_end(outputs, lengths):
    return outputs[:, -1, :]


@wrong("last_hidden_state", "off by one")
def last_hidden_state_off_by_one(outputs, lengths):
    idx = torch.clamp(lengths, max=outputs.shape[1] - 1)
    return outputs[torch.arange(outputs.shape[0]), idx]


@wrong("last_hidden_state", "first state")
def last_hidden_state_first(outputs, lengths):
    return outputs[:, 0].clone()


@wrong("last_hidden_state", "averages")
def last_hidden_state_mean(outputs, lengths):
    real = torch.arange(outputs.shape[1])[None, :] < lengths[:, None]
    return (outputs * real[..., None]).sum(1) / lengths[:, None]


@wrong("last_hidden_state", "shape")
def last_hidden_state_keepdim(outputs, lengths):
    idx = (lengths - 1)[:, None, None].expand(-1, 1, outputs.size(2))
    return torch.gather(outputs, 1, idx)


@wrong("last_hidden_state", "wrong state")
def last_hidden_state_longest(outputs, lengths):
    return outputs[:, int(lengths.max()) - 1]
