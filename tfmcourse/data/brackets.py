"""Well-nested brackets: a tiny language whose samples a program can judge (lessons 10-11).

A sentence is a balanced string over three bracket pairs, nested at most
``max_depth`` deep, e.g. ``([]{()})[]``. Every sequence is
``<bos> sentence <eos>`` followed by ``<pad>``. A language model trained on it
must learn a stack: which bracket closes next depends on everything still open.

Because validity is decidable (:func:`is_valid`), a lesson can *measure* what a
decoding choice does to samples, instead of eyeballing text. Everything is
generated offline from a seeded ``random.Random``.

>>> data = BracketData()
>>> batch = data.batch(64, seed=1)                  # (64, T) long, padded
>>> data.decode(batch[0]), data.judge(batch).all()
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

PAD, BOS, EOS = 0, 1, 2
PAIRS = {"(": ")", "[": "]", "{": "}"}
SYMBOLS = ("<pad>", "<bos>", "<eos>") + tuple("([{)]}")
STOI = {s: i for i, s in enumerate(SYMBOLS)}


def random_sentence(length: int, max_depth: int, rng: random.Random) -> str:
    """A random balanced string of exactly ``length`` brackets (``length`` even), nested ≤ ``max_depth``."""
    if length % 2 or length < 2:
        raise ValueError(f"length must be a positive even number, got {length}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    out: list[str] = []
    stack: list[str] = []
    for i in range(length):
        remaining = length - i
        can_open = len(stack) < max_depth and len(stack) + 1 <= remaining - 1
        must_open = not stack
        if must_open or (can_open and rng.random() < 0.5):
            opener = rng.choice(tuple(PAIRS))
            stack.append(opener)
            out.append(opener)
        else:
            out.append(PAIRS[stack.pop()])
    return "".join(out)


def is_valid(sentence: str, max_depth: int) -> bool:
    """True if ``sentence`` is a non-empty balanced bracket string nested at most ``max_depth`` deep."""
    stack: list[str] = []
    for ch in sentence:
        if ch in PAIRS:
            stack.append(ch)
            if len(stack) > max_depth:
                return False
        elif not stack or PAIRS[stack.pop()] != ch:
            return False
    return bool(sentence) and not stack


@dataclass(frozen=True)
class BracketData:
    """Sentences of ``min_len``…``max_len`` brackets (even lengths), nested at most ``max_depth``."""

    min_len: int = 2
    max_len: int = 24
    max_depth: int = 4

    def __post_init__(self):
        if not 2 <= self.min_len <= self.max_len or self.min_len % 2 or self.max_len % 2:
            raise ValueError(
                f"need even lengths with 2 <= min_len <= max_len, got {self.min_len} and {self.max_len}"
            )

    @property
    def vocab_size(self) -> int:
        return len(SYMBOLS)

    @property
    def seq_len(self) -> int:
        """Tokens per padded sequence: ``<bos>``, the longest sentence, ``<eos>``."""
        return self.max_len + 2

    def sentences(self, n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        return [
            random_sentence(2 * rng.randint(self.min_len // 2, self.max_len // 2), self.max_depth, rng)
            for _ in range(n)
        ]

    def encode(self, sentences: Sequence[str], length: int | None = None) -> Tensor:
        """``<bos> s <eos> <pad>…`` per sentence. Shape: returns ``(len(sentences), length)`` long."""
        length = length or self.seq_len
        out = torch.full((len(sentences), length), PAD, dtype=torch.long)
        for i, s in enumerate(sentences):
            ids = [BOS] + [STOI[c] for c in s] + [EOS]
            if len(ids) > length:
                raise ValueError(f"sentence of {len(s)} brackets does not fit in {length} tokens")
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def batch(self, n: int, seed: int) -> Tensor:
        """``n`` random sequences, drawn from ``seed``. Shape: returns ``(n, seq_len)`` long."""
        return self.encode(self.sentences(n, seed))

    @staticmethod
    def decode(ids: Sequence[int] | Tensor) -> str:
        """The brackets of one sequence up to its first ``<eos>`` (``<bos>`` and pads skipped).

        A sequence with no ``<eos>`` gets a trailing ``…``; any special token inside
        the sentence shows as ``?`` (so the sentence is judged invalid).
        """
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if ids and ids[0] == BOS:
            ids = ids[1:]
        out = []
        for i in ids:
            if i == EOS:
                return "".join(out)
            out.append(SYMBOLS[i] if i >= 3 else "?")
        return "".join(out) + "…"

    def judge(self, generated: Tensor) -> Tensor:
        """Per row: is the text up to the first ``<eos>`` a valid sentence (and is there an ``<eos>``)?

        Shape: generated ``(B, L)`` long; returns ``(B,)`` bool.
        """
        return torch.tensor([is_valid(self.decode(row), self.max_depth) for row in generated])
