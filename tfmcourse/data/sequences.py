"""Variable-length symbol tasks for lessons 01-02: offline, seeded, plain Python.

The task is **reversal**: the source is a string of symbols, the target is the
same symbols in reverse order. Every source token is needed (the first target
token is the *last* source token, the last target token the *first* one), so
a model cannot get a long source right by remembering only part of it.

>>> task = ReversalTask()                       # symbols a…j, trained on lengths 3..12
>>> train_pairs = task.pairs(2000, seed=0)      # [(["c", "a", …], ["…", "a", "c"]), …]
>>> test = task.test_set(per_length=50)         # {length: pairs}, lengths 3..16
>>> batch = make_batch(train_pairs[:32], task.vocab)

Lengths above ``task.train_lengths[1]`` never appear in training data: they
are *held out* to see what a model does beyond what it has seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def tokenize(text: str) -> list[str]:
    """Split a source written as ``"c a f"`` (spaces) or ``"caf"`` (one character per symbol)."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return text.split() if " " in text.strip() else list(text.strip())


class Vocab:
    """Symbol <-> id table. Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``."""

    def __init__(self, symbols: Sequence[str]):
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be distinct")
        if any(s in (PAD, BOS, EOS) for s in symbols):
            raise ValueError(f"{PAD}, {BOS}, {EOS} are reserved")
        self.itos = [PAD, BOS, EOS] + symbols
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        try:
            return [self.stoi[t] for t in tokens]
        except KeyError as exc:
            raise KeyError(f"unknown symbol {exc.args[0]!r}; the vocabulary is {self.itos[3:]}") from None

    def decode(self, ids: Sequence[int] | Tensor, *, stop_at_eos: bool = True) -> list[str]:
        """Symbols of ``ids``, without pads/BOS, stopping at the first EOS."""
        out = []
        for i in ids.tolist() if isinstance(ids, Tensor) else ids:
            if i == self.eos_id and stop_at_eos:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out


@dataclass(frozen=True)
class ReversalTask:
    """Reverse a string of ``n_symbols`` symbols; trained on lengths ``train_lengths`` (inclusive)."""

    n_symbols: int = 10
    train_lengths: tuple[int, int] = (3, 12)
    max_test_length: int = 16
    vocab: Vocab = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lo, hi = self.train_lengths
        if not (1 <= lo <= hi):
            raise ValueError(f"train_lengths must be (lo, hi) with 1 <= lo <= hi, got {self.train_lengths}")
        if self.max_test_length < hi:
            raise ValueError(
                f"max_test_length={self.max_test_length} is below the longest trained length {hi}"
            )
        if not 2 <= self.n_symbols <= 26:
            raise ValueError(f"n_symbols must be between 2 and 26, got {self.n_symbols}")
        object.__setattr__(self, "vocab", Vocab([chr(ord("a") + i) for i in range(self.n_symbols)]))

    @property
    def symbols(self) -> list[str]:
        return self.vocab.itos[3:]

    @property
    def held_out_lengths(self) -> list[int]:
        return list(range(self.train_lengths[1] + 1, self.max_test_length + 1))

    @staticmethod
    def target(source: Sequence[str]) -> list[str]:
        return list(reversed(source))

    def sample(self, length: int, rng: random.Random) -> tuple[list[str], list[str]]:
        src = [rng.choice(self.symbols) for _ in range(length)]
        return src, self.target(src)

    def pairs(
        self, n: int, *, seed: int = 0, lengths: tuple[int, int] | None = None
    ) -> list[tuple[list[str], list[str]]]:
        """``n`` (source, target) pairs, lengths uniform in ``lengths`` (default: the trained range)."""
        lo, hi = lengths or self.train_lengths
        if lo < 1 or hi < lo:
            raise ValueError(f"lengths must be (lo, hi) with 1 <= lo <= hi, got {(lo, hi)}")
        rng = random.Random(f"reversal-{seed}-{lo}-{hi}")
        return [self.sample(rng.randint(lo, hi), rng) for _ in range(n)]

    def test_set(
        self, per_length: int = 50, *, seed: int = 1_000_003
    ) -> dict[int, list[tuple[list[str], list[str]]]]:
        """``per_length`` pairs for every length from the shortest trained one to ``max_test_length``.

        The lengths above ``train_lengths[1]`` are the held-out ones.
        """
        rng = random.Random(f"reversal-test-{seed}")
        return {
            L: [self.sample(L, rng) for _ in range(per_length)]
            for L in range(self.train_lengths[0], self.max_test_length + 1)
        }


class Batch(NamedTuple):
    """A padded batch. ``tgt_in`` starts with BOS, ``tgt_out`` ends with EOS (teacher forcing)."""

    src: Tensor  # (B, S) long, padded with pad_id
    src_lengths: Tensor  # (B,) long
    tgt_in: Tensor  # (B, T) long: BOS y1 … yn, padded
    tgt_out: Tensor  # (B, T) long: y1 … yn EOS, padded


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int, *, length: int | None = None
) -> tuple[Tensor, Tensor]:
    """Right-pad integer sequences into a ``(B, S)`` tensor; also return their lengths ``(B,)``."""
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    lengths = [len(s) for s in seqs]
    S = max(lengths) if length is None else length
    if max(lengths) > S:
        raise ValueError(f"a sequence of length {max(lengths)} does not fit in length={S}")
    out = torch.full((len(seqs), S), pad_id, dtype=torch.long)  # (B, S)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = torch.tensor(list(s), dtype=torch.long)
    return out, torch.tensor(lengths, dtype=torch.long)


def make_batch(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], vocab: Vocab) -> Batch:
    """Encode and pad (source, target) symbol pairs."""
    src, lengths = pad_sequences([vocab.encode(s) for s, _ in pairs], vocab.pad_id)
    tgt_in, _ = pad_sequences([[vocab.bos_id] + vocab.encode(t) for _, t in pairs], vocab.pad_id)
    tgt_out, _ = pad_sequences([vocab.encode(t) + [vocab.eos_id] for _, t in pairs], vocab.pad_id)
    return Batch(src, lengths, tgt_in, tgt_out)
