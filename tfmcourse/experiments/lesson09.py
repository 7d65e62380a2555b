"""Lesson 09's stand-in model: a decoder whose every logit is read from a table.

:class:`ScriptedModel` has the reference model interface (``encode(src)`` →
memory, ``decode(tgt_in, memory, src)`` → logits ``(B, t, V)``) but no
learned weights: the logits at every decoder position come from a fixed
table indexed by (the row's key, the position, the token *at* that position).
So what a correct greedy decoder must produce is known in advance (when each
row emits EOS, or that it never does), and reading the logits of the wrong
position, feeding the wrong prefix or forgetting to pad after EOS all give
different, recognisable outputs. The lesson uses it to show greedy search
missing a better sequence; the checks use it to test decoders.
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
