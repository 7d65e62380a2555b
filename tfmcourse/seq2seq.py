"""Lessons 01-02: the RNN encoder-decoder, its fixed-context bottleneck, and Bahdanau attention.

Two models share one decoder and differ only in the *context* ``c_i`` the
decoder reads at output step ``i``:

- fixed context (Cho et al. 2014, Sutskever et al. 2014): ``c_i = h_S``, the
  encoder's last state, the same vector for every step;
- attention (Bahdanau et al. 2014): ``c_i = Σ_j α_ij h_j`` over *all* encoder
  states, with ``α_i = softmax_j(score(s_{i-1}, h_j))`` and pads masked out.

The score is additive (Bahdanau, ``v·tanh(W_query q + W_key k_j)``), or one of
Luong et al. 2015's variants: ``dot`` (``q·k_j``) and ``general`` (``q W k_j``).

The small functions (:func:`rnn_cell`, :func:`last_hidden_state`,
:func:`additive_scores`, :func:`bahdanau_attention`) are the reference
implementations of the lesson 01-02 exercises; ``masked_softmax`` lives in
:mod:`tfmcourse.attention`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tfmcourse.attention import masked_softmax

ATTENTION_KINDS = (None, "additive", "dot", "general")


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


# ---------------------------------------------------------------- lesson 01: the pieces of an RNN


def rnn_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
) -> Tensor:
    """One step of a tanh RNN: ``h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`` (as ``nn.RNNCell``).

    Shape:
        x ``(B, I)``, h ``(B, H)``, weight_ih ``(H, I)``, weight_hh ``(H, H)``,
        bias_ih and bias_hh ``(H,)`` or None; returns ``(B, H)``.
    """
    _need(
        x.dim() == 2 and h.dim() == 2,
        f"rnn_cell: x and h must be (B, I) and (B, H), got {_shape(x)} and {_shape(h)}",
    )
    _need(x.shape[0] == h.shape[0], f"rnn_cell: x {_shape(x)} and h {_shape(h)} disagree on the batch size B")
    H, I = h.shape[1], x.shape[1]
    _need(
        _shape(weight_ih) == (H, I), f"rnn_cell: weight_ih must be (H, I) = {(H, I)}, got {_shape(weight_ih)}"
    )
    _need(
        _shape(weight_hh) == (H, H), f"rnn_cell: weight_hh must be (H, H) = {(H, H)}, got {_shape(weight_hh)}"
    )
    pre = x @ weight_ih.T + h @ weight_hh.T  # (B, H)
    for b in (bias_ih, bias_hh):
        if b is not None:
            _need(_shape(b) == (H,), f"rnn_cell: biases must be (H,) = {(H,)}, got {_shape(b)}")
            pre = pre + b
    return torch.tanh(pre)  # (B, H)


def last_hidden_state(outputs: Tensor, lengths: Tensor) -> Tensor:
    """The state after each sequence's last *real* token, not after the padded end.

    Shape:
        outputs ``(B, S, H)`` (an RNN's states at every position, pads included),
        lengths ``(B,)`` integers in ``1..S``; returns ``(B, H)``.
    """
    _need(outputs.dim() == 3, f"last_hidden_state: outputs must be (B, S, H), got {_shape(outputs)}")
    B, S, H = outputs.shape
    lengths = torch.as_tensor(lengths)
    _need(_shape(lengths) == (B,), f"last_hidden_state: lengths must be (B,) = ({B},), got {_shape(lengths)}")
    _need(
        not lengths.is_floating_point(), f"last_hidden_state: lengths must be integers, got {lengths.dtype}"
    )
    _need(
        bool(((lengths >= 1) & (lengths <= S)).all()),
        f"last_hidden_state: every length must be in 1..S={S}, got {lengths.tolist()}",
    )
    index = (lengths.to(outputs.device).long() - 1).view(B, 1, 1).expand(B, 1, H)  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)  # (B, H)


# ---------------------------------------------------------------- lesson 02: attention scores


def _check_qk(name: str, query: Tensor, keys: Tensor) -> None:
    _need(query.dim() == 2, f"{name}: query must be (B, Dq), got {_shape(query)}")
    _need(keys.dim() == 3, f"{name}: keys must be (B, S, Dk), got {_shape(keys)}")
    _need(
        query.shape[0] == keys.shape[0],
        f"{name}: query {_shape(query)} and keys {_shape(keys)} disagree on B",
    )


def additive_scores(query: Tensor, keys: Tensor, W_query: Tensor, W_key: Tensor, v: Tensor) -> Tensor:
    """Bahdanau's energy ``e_j = v · tanh(W_query q + W_key k_j)`` for every key ``j``.

    Shape:
        query ``(B, Dq)``, keys ``(B, S, Dk)``, W_query ``(A, Dq)``, W_key ``(A, Dk)``,
        v ``(A,)``; returns ``(B, S)``.
    """
    _check_qk("additive_scores", query, keys)
    A = v.shape[0] if v.dim() == 1 else -1
    _need(v.dim() == 1, f"additive_scores: v must be (A,), got {_shape(v)}")
    _need(
        _shape(W_query) == (A, query.shape[1]),
        f"additive_scores: W_query must be (A, Dq) = {(A, query.shape[1])}, got {_shape(W_query)}",
    )
    _need(
        _shape(W_key) == (A, keys.shape[2]),
        f"additive_scores: W_key must be (A, Dk) = {(A, keys.shape[2])}, got {_shape(W_key)}",
    )
    q = query @ W_query.T  # (B, A)
    k = keys @ W_key.T  # (B, S, A)
    return torch.tanh(q[:, None, :] + k) @ v  # (B, S)


def dot_scores(query: Tensor, keys: Tensor) -> Tensor:
    """Luong's ``dot`` score ``e_j = q · k_j`` (needs ``Dq == Dk``).

    Shape:
        query ``(B, D)``, keys ``(B, S, D)``; returns ``(B, S)``.
    """
    _check_qk("dot_scores", query, keys)
    _need(
        query.shape[1] == keys.shape[2],
        f"dot_scores: query and keys need the same size, got Dq={query.shape[1]} and Dk={keys.shape[2]}",
    )
    return (keys @ query[:, :, None]).squeeze(-1)  # (B, S)


def general_scores(query: Tensor, keys: Tensor, W: Tensor) -> Tensor:
    """Luong's ``general`` score ``e_j = q W k_j``.

    Shape:
        query ``(B, Dq)``, keys ``(B, S, Dk)``, W ``(Dq, Dk)``; returns ``(B, S)``.
    """
    _check_qk("general_scores", query, keys)
    _need(
        _shape(W) == (query.shape[1], keys.shape[2]),
        f"general_scores: W must be (Dq, Dk) = {(query.shape[1], keys.shape[2])}, got {_shape(W)}",
    )
    return dot_scores(query @ W, keys)  # (B, S)


def _attend(scores: Tensor, values: Tensor, key_padding_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    _need(
        values.dim() == 3 and values.shape[:2] == scores.shape,
        f"values must be (B, S, Dv) with (B, S) = {_shape(scores)}, got {_shape(values)}",
    )
    if key_padding_mask is not None:
        _need(
            _shape(key_padding_mask) == _shape(scores),
            f"key_padding_mask must be (B, S) = {_shape(scores)}, got {_shape(key_padding_mask)}",
        )
    weights = masked_softmax(scores, key_padding_mask)  # (B, S)
    context = (weights[:, None, :] @ values).squeeze(1)  # (B, Dv)
    return context, weights


def bahdanau_attention(
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    W_query: Tensor,
    W_key: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Additive attention: energies → softmax over the unmasked keys → weighted sum of the values.

    Shape:
        query ``(B, Dq)``, keys ``(B, S, Dk)``, values ``(B, S, Dv)``, W_query ``(A, Dq)``,
        W_key ``(A, Dk)``, v ``(A,)``, key_padding_mask ``(B, S)`` bool, True at pads;
        returns ``context (B, Dv)`` and ``weights (B, S)``. A sample whose keys are all
        pads gets zero weights and a zero context.
    """
    scores = additive_scores(query, keys, W_query, W_key, v)  # (B, S)
    return _attend(scores, values, key_padding_mask)


class _ScoredAttention(nn.Module):
    """Energies from ``scores(query, keys)`` → masked softmax → weighted sum of the values."""

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:  # (B, S)
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, key_padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Returns ``context (B, Dv)`` and ``weights (B, S)``."""
        return _attend(self.scores(query, keys), values, key_padding_mask)


class AdditiveAttention(_ScoredAttention):
    """Bahdanau attention with learned ``W_query``, ``W_key`` (no bias) and ``v``."""

    def __init__(self, query_size: int, key_size: int, attn_size: int):
        super().__init__()
        self.W_query = nn.Linear(query_size, attn_size, bias=False)
        self.W_key = nn.Linear(key_size, attn_size, bias=False)
        self.v = nn.Parameter(
            torch.empty(attn_size).uniform_(-1 / math.sqrt(attn_size), 1 / math.sqrt(attn_size))
        )

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return additive_scores(query, keys, self.W_query.weight, self.W_key.weight, self.v)


class DotAttention(_ScoredAttention):
    """Luong ``dot`` attention: no parameters, ``Dq == Dk``."""

    def __init__(self, query_size: int, key_size: int, attn_size: int | None = None):
        super().__init__()
        _need(
            query_size == key_size,
            f"dot attention needs query_size == key_size, got {query_size} and {key_size}",
        )

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return dot_scores(query, keys)


class GeneralAttention(_ScoredAttention):
    """Luong ``general`` attention: ``q W k_j`` with a learned ``W (Dq, Dk)``."""

    def __init__(self, query_size: int, key_size: int, attn_size: int | None = None):
        super().__init__()
        self.W = nn.Parameter(torch.randn(query_size, key_size) / math.sqrt(query_size))

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return general_scores(query, keys, self.W)


# ---------------------------------------------------------------- the models


class Memory(NamedTuple):
    """What the encoder hands the decoder."""

    states: Tensor  # (B, S, H): h_1 … h_S (zeros at pads)
    final: Tensor  # (B, H): the fixed context, the state after each source's last real token
    pad_mask: Tensor  # (B, S) bool, True at pads


class Encoder(nn.Module):
    """Embedding + GRU over the padded source (packed, so pads never enter a state)."""

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        *,
        bidirectional: bool = False,
        pad_id: int = 0,
    ):
        super().__init__()
        dirs = 2 if bidirectional else 1
        _need(
            hidden_size % dirs == 0, f"a bidirectional encoder needs an even hidden_size, got {hidden_size}"
        )
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.rnn = nn.GRU(emb_size, hidden_size // dirs, batch_first=True, bidirectional=bidirectional)

    def forward(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None) -> Memory:
        """``embedded`` (optional, ``(B, S, E)``) replaces ``embedding(src)``: for gradient probes."""
        _need(src.dim() == 2, f"src must be (B, S) token ids, got {_shape(src)}")
        B, S = src.shape
        _need(_shape(src_lengths) == (B,), f"src_lengths must be (B,) = ({B},), got {_shape(src_lengths)}")
        _need(bool(((src_lengths >= 1) & (src_lengths <= S)).all()), f"src_lengths must be in 1..{S}")
        x = self.embedding(src) if embedded is None else embedded  # (B, S, E)
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)  # h_n (dirs, B, H/dirs)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, H)
        final = h_n.transpose(0, 1).reshape(B, -1)  # (B, H): [forward last ; backward first]
        pad_mask = (
            torch.arange(S, device=src.device)[None, :] >= src_lengths.to(src.device)[:, None]
        )  # (B, S)
        return Memory(states, final, pad_mask)


def make_attention(kind: str | None, query_size: int, key_size: int, attn_size: int) -> nn.Module | None:
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
    if kind is None:
        return None
    return {"additive": AdditiveAttention, "dot": DotAttention, "general": GeneralAttention}[kind](
        query_size, key_size, attn_size
    )


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; ``attention=None`` is the fixed-context model, else the attention kind.

    Decoder step ``i`` (the same for both models; only ``c_i`` differs)::

        c_i       = h_final                                   (fixed context)
                  | Σ_j softmax_j(score(s_{i-1}, h_j)) h_j    (attention)
        s_i       = GRUCell([emb(y_{i-1}); c_i], s_{i-1})     s_0 = tanh(W_init h_final)
        logits_i  = W_out [s_i; c_i; emb(y_{i-1})]

    Shape:
        src ``(B, S)``, src_lengths ``(B,)``, tgt_in ``(B, T)`` (starting with BOS);
        ``forward`` returns logits ``(B, T, V)`` and weights ``(B, T, S)`` (None without attention).
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        emb_size: int = 16,
        hidden_size: int = 32,
        attention: str | None = None,
        attn_size: int | None = None,
        bidirectional: bool = False,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        super().__init__()
        _need(
            vocab_size > 3 and emb_size > 0 and hidden_size > 0,
            f"vocab_size (>3), emb_size and hidden_size must be positive, got {vocab_size}, {emb_size}, {hidden_size}",
        )
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.kind = attention
        self.encoder = Encoder(vocab_size, emb_size, hidden_size, bidirectional=bidirectional, pad_id=pad_id)
        self.attention = make_attention(attention, hidden_size, hidden_size, attn_size or hidden_size)
        self.init_state = nn.Linear(hidden_size, hidden_size)
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.cell = nn.GRUCell(emb_size + hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size + emb_size, vocab_size)

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None) -> Memory:
        return self.encoder(src, src_lengths, embedded)

    def initial_state(self, memory: Memory) -> Tensor:
        return torch.tanh(self.init_state(memory.final))  # (B, H)

    def step(self, y_prev: Tensor, s: Tensor, memory: Memory) -> tuple[Tensor, Tensor, Tensor | None]:
        """One decoder step: ``y_prev (B,)``, ``s (B, H)`` → logits ``(B, V)``, ``s_new``, weights ``(B, S)``."""
        e = self.embedding(y_prev)  # (B, E)
        if self.attention is None:
            c, w = memory.final, None  # (B, H)
        else:
            c, w = self.attention(s, memory.states, memory.states, memory.pad_mask)  # (B, H), (B, S)
        s = self.cell(torch.cat([e, c], dim=-1), s)  # (B, H)
        logits = self.out(torch.cat([s, c, e], dim=-1))  # (B, V)
        return logits, s, w

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        _need(
            tgt_in.dim() == 2 and tgt_in.shape[0] == src.shape[0],
            f"tgt_in must be (B, T) with B={src.shape[0]}, got {_shape(tgt_in)}",
        )
        memory = self.encode(src, src_lengths)
        s = self.initial_state(memory)
        logits, weights = [], []
        for i in range(tgt_in.shape[1]):
            out, s, w = self.step(tgt_in[:, i], s, memory)
            logits.append(out)
            weights.append(w)
        return torch.stack(logits, 1), (None if self.attention is None else torch.stack(weights, 1))

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, src_lengths: Tensor, max_len: int) -> tuple[Tensor, Tensor | None]:
        """Pick the most likely token at every step, feeding it back in.

        Returns tokens ``(B, ≤max_len)`` (no BOS; each row ends at its EOS, then pads) and,
        with attention, the weights ``(B, T, S)`` used at each step.
        """
        _need(max_len >= 1, f"max_len must be at least 1, got {max_len}")
        memory = self.encode(src, src_lengths)
        s = self.initial_state(memory)
        B = src.shape[0]
        y = torch.full((B,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, s, w = self.step(y, s, memory)
            y = logits.argmax(-1).masked_fill(done, self.pad_id)  # (B,)
            tokens.append(y)
            weights.append(w)
            done = done | (y == self.eos_id)
            if bool(done.all()):
                break
        out = torch.stack(tokens, 1)  # (B, T)
        return out, (None if self.attention is None else torch.stack(weights, 1))
