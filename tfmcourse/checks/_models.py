"""Small deterministic stand-in models that checks hand to learners' code.

:class:`ScriptedModel` has the reference model interface (``encode(src)`` →
memory, ``decode(tgt_in, memory, src)`` → logits ``(B, t, V)``) but no
learned weights: the logits at every decoder position come from a fixed
table indexed by (the row's key, the position, the token *at* that position).
A check therefore knows exactly what a correct greedy decoder must produce
(when each row emits EOS, or that it never does), and reading the logits of
the wrong position, feeding the wrong prefix or forgetting to pad after EOS
all give different, recognisable outputs.

Built only from torch; it validates its inputs and raises ``ValueError`` with
a plain message when it is called the wrong way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ScriptedModel(nn.Module):
    """A table-driven encoder-decoder.

    ``logit_table[k, j, v]`` is the logit vector (over ``V`` tokens) that the
    decoder outputs at position ``j`` when the token there is ``v`` and the
    row's key is ``k``. A row's key is its first source token, which must be
    ``< K``. ``encode`` returns the one-hot source as float memory.

    Shape:
        logit_table ``(K, P, V, V)``: ``K`` keys, ``P`` positions, ``V`` tokens;
        src ``(B, S)`` long; memory ``(B, S, n_src)``; tgt_in ``(B, t)`` long
        with ``t <= P``; logits ``(B, t, V)``.
    """

    def __init__(self, logit_table: Tensor, n_src_tokens: int):
        super().__init__()
        if logit_table.dim() != 4 or logit_table.shape[2] != logit_table.shape[3]:
            raise ValueError(f"logit_table must be (K, P, V, V), got {tuple(logit_table.shape)}")
        self.register_buffer("logit_table", logit_table.detach().clone().float(), persistent=False)
        self.n_src_tokens = int(n_src_tokens)

    @property
    def vocab_size(self) -> int:
        return int(self.logit_table.shape[-1])

    @property
    def max_positions(self) -> int:
        return int(self.logit_table.shape[1])

    def encode(self, src: Tensor) -> Tensor:
        if not isinstance(src, Tensor) or src.dim() != 2 or src.is_floating_point():
            raise ValueError("encode(src): src must be a (B, S) tensor of token ids")
        return nn.functional.one_hot(src.long(), self.n_src_tokens).float()  # (B, S, n_src)

    def decode(self, tgt_in: Tensor, memory: Tensor, src: Tensor) -> Tensor:
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.is_floating_point():
            raise ValueError(
                "decode(tgt_in, memory, src): tgt_in must be a (B, t) tensor of token ids "
                "(the prefix generated so far, starting with BOS)"
            )
        if not isinstance(memory, Tensor) or memory.dim() != 3 or not memory.is_floating_point():
            raise ValueError("decode(tgt_in, memory, src): memory must be what encode(src) returned")
        if not isinstance(src, Tensor) or src.dim() != 2 or tuple(src.shape) != tuple(memory.shape[:2]):
            raise ValueError(
                "decode(tgt_in, memory, src): src must be the (B, S) source that memory was encoded from"
            )
        B, t = tgt_in.shape
        if memory.shape[0] != B:
            raise ValueError(f"decode: tgt_in has {B} rows but memory has {memory.shape[0]}")
        if t == 0:
            raise ValueError("decode: tgt_in is empty; start every row with BOS")
        if t > self.max_positions:
            raise ValueError(
                f"decode: tgt_in has {t} positions, more than this model's "
                f"{self.max_positions}: did the loop run past max_len?"
            )
        V = self.vocab_size
        if bool((tgt_in < 0).any()) or bool((tgt_in >= V).any()):
            raise ValueError(f"decode: tgt_in holds ids outside [0, {V})")
        key = memory[:, 0].argmax(dim=-1)  # (B,)  the row's first source token
        if bool((key >= self.logit_table.shape[0]).any()):
            raise ValueError("decode: memory does not come from this model's encode(src)")
        pos = torch.arange(t, device=tgt_in.device)  # (t,)
        return self.logit_table[key[:, None], pos[None, :], tgt_in.long()]  # (B, t, V)


def scripted_case(
    g: torch.Generator,
    *,
    ends: list[int | None],
    max_len: int,
    vocab_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    src_len: int = 6,
) -> tuple[ScriptedModel, Tensor]:
    """A :class:`ScriptedModel` and a source batch whose greedy decoding is planned.

    Row ``b`` of the source emits EOS as its ``ends[b]``-th generated token
    (0-based) when decoded greedily, or never if ``ends[b]`` is ``None``. Every
    other argmax is a content token (never PAD, BOS or EOS), including the
    logits read after EOS or at positions a correct decoder never visits.
    Logits are random with a clear winner (margin >= 1), so argmax is unique.
    """
    special = {bos_id, eos_id, pad_id}
    content = torch.tensor([v for v in range(vocab_size) if v not in special])
    B, K, P, V = len(ends), len(ends), max_len + 2, vocab_size
    table = torch.randn(K, P, V, V, generator=g)
    winners = content[torch.randint(len(content), (K, P, V), generator=g)]  # (K, P, V)
    # plan each row's greedy path and plant its EOS
    for k, end in enumerate(ends):
        last = bos_id
        for j in range(max_len):
            if end is not None and j == end:
                winners[k, j, last] = eos_id
                break
            last = int(winners[k, j, last])
    top = table.max(dim=-1, keepdim=True).values  # (K, P, V, 1)
    table.scatter_(-1, winners[..., None], top + 1.0 + torch.rand(K, P, V, 1, generator=g))
    n_src = max(K, vocab_size) + 3
    src = torch.randint(K, n_src, (B, src_len), generator=g)
    src[:, 0] = torch.arange(B)  # row b has key b
    return ScriptedModel(table, n_src), src
