"""Test cases for learners' greedy decoders, built on lesson 09's :class:`ScriptedModel`.

:func:`scripted_case` plans, row by row, where greedy decoding emits EOS (or
that it never does), so a check knows the exact output a correct decoder gives.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tfmcourse.experiments.lesson09 import ScriptedModel


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
